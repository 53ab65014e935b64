"""How an emulated API joins the sandbox: a WSGI app mounted under its own path prefix.

Each emulated API lives in its own package (sandbox/cloudflare, sandbox/cohere, sandbox/hub,
sandbox/fireworks, sandbox/vllm) and offers a `mount(context) -> Mounted` factory; the app
(sandbox/app.py) sends every request whose path is the prefix, or lies under `prefix + "/"`,
to that mount with the environ unchanged (PATH_INFO keeps the prefix), and the fault
middleware (common/faults.py) wraps them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import Clock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


@dataclass(frozen=True)
class MountContext:
    """What every mounted API is given: its state folder (shared: each API keeps its own files
    or tables under it), the tokens the sandbox accepts, the clock, and its own options from
    the command line (`reconciler sandbox --vllm-replicas 3` -> {"vllm_replicas": 3})."""

    data_dir: Path
    tokens: Tokens
    clock: Clock
    options: Mapping[str, Any] = field(default_factory=dict)


class Mounted(Protocol):
    prefix: str  # "/fireworks": no trailing slash

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]: ...


def under(path: str, prefix: str) -> bool:
    """Whether a request path belongs to the mount at `prefix`."""
    return path == prefix or path.startswith(prefix + "/")
