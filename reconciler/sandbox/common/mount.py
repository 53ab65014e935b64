"""How an emulated API joins the sandbox: a WSGI app mounted under its own path prefix.

Each emulated API lives in its own package (sandbox/cloudflare, sandbox/cohere, sandbox/hub,
sandbox/fireworks, sandbox/vllm) and offers a `mount(context) -> Mounted` factory, named in
the registry (sandbox/mounts.py); the app (sandbox/app.py) sends every request whose path is
the prefix, or lies under `prefix + "/"`, to that mount with the environ unchanged (PATH_INFO
keeps the prefix), the longest prefix first, and the fault middleware (common/faults.py) wraps
them all.

A mount answers every request it is given in its own API's shape, errors included: an
unexpected exception is logged and becomes a 500 in that shape (only CONNECTION_LOST goes
through, as nobody is left to answer). Beyond `prefix` and `__call__` a mount may say more
about itself (see `Described`); each of those attributes is optional, and the functions below
read them with their defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import Clock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

T = TypeVar("T")

# The client went quiet past the server's read timeout, or went away, while the body was being
# read: nobody is left to answer. A mount lets these through; werkzeug's handler takes them as
# a dropped connection and closes it (server.py), instead of a 500 and a traceback in the log.
CONNECTION_LOST: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)


@dataclass(frozen=True)
class MountContext:
    """What every mounted API is given: its state folder (shared: each API keeps its own files
    or tables under it), the tokens the sandbox accepts, the clock, and its own options from
    the command line (`reconciler sandbox --vllm-replicas 3` -> {"vllm_replicas": 3})."""

    data_dir: Path
    tokens: Tokens
    clock: Clock
    options: Mapping[str, Any] = field(default_factory=dict)

    @overload
    def option(self, name: str, kind: type[T]) -> T | None: ...
    @overload
    def option(self, name: str, kind: type[T], default: T) -> T: ...

    def option(self, name: str, kind: type[T], default: T | None = None) -> T | None:
        """The option `name` if it was given (and is not None), else `default`; TypeError if it
        is not a `kind`, so a wrong value fails at start rather than on the first request."""
        value = self.options.get(name)
        if value is None:
            return default
        if not isinstance(value, kind):
            raise TypeError(f"sandbox option {name!r} must be of type {kind.__name__}")
        return value


class Mounted(Protocol):
    prefix: str  # "/fireworks": no trailing slash

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]: ...


class Described(Mounted, Protocol):
    """What a mount may also say about itself; every member is optional (see the readers)."""

    # How `reconciler sandbox` names it when it starts: "Cloudflare API". Default: the prefix.
    title: str
    # The path clients take as their base URL, if not the prefix: Cohere's SDK wants the host
    # root ("") and adds /v1 itself.
    base_path: str
    # Whether the fault spec's `rate_limit` counts this API's calls (Cloudflare's published
    # per-token limit). Default: False.
    rate_limited: bool

    def fault_body(self, status: int) -> Any:
        """The JSON body of an injected error with this status, in the API's own shape.
        Default: neutral_error()."""
        ...


def under(path: str, prefix: str) -> bool:
    """Whether a request path belongs to the mount at `prefix`."""
    return path == prefix or path.startswith(prefix + "/")


def owner(mounts: Sequence[Mounted], path: str) -> Mounted | None:
    """The mount a request path belongs to: the one with the longest matching prefix (so a
    mount at /v1/x would take its paths from one at /v1), or None."""
    found: Mounted | None = None
    for mounted in mounts:
        if under(path, mounted.prefix) and (
            found is None or len(mounted.prefix) > len(found.prefix)
        ):
            found = mounted
    return found


def neutral_error(status: int, message: str) -> dict[str, Any]:
    """The sandbox's own error shape, for paths no API owns: `{"error": {"status", "message"}}`
    (sandbox choice; no emulated API answers in it, so a client cannot mistake it for one)."""
    return {"error": {"status": status, "message": message}}


def title_of(mount: Mounted) -> str:
    return str(getattr(mount, "title", mount.prefix))


def base_path_of(mount: Mounted) -> str:
    return str(getattr(mount, "base_path", mount.prefix))


def is_rate_limited(mount: Mounted | None) -> bool:
    return bool(getattr(mount, "rate_limited", False))


def fault_body_of(mount: Mounted | None, status: int) -> Any:
    """The body of an injected error with `status` on a path of `mount` (None: no mount)."""
    shaped = getattr(mount, "fault_body", None)
    if shaped is not None:
        return shaped(status)
    return neutral_error(status, HTTPStatus(status).phrase)
