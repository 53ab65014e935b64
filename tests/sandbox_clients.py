"""What the sandbox tests share: an HTTP client for either API, and `serve` run as a process."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path

import httpx

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.common.clock import ManualClock
from reconciler.sandbox.server import SandboxServer


def clock_on(day: str) -> ManualClock:
    """A sandbox clock at noon (UTC) of an ISO day: what the Cloudflare API takes as today
    (a model is retired from its planned_deprecation_date on), so a test of which models are
    served does not change with the date it runs on."""
    noon = datetime.combine(date.fromisoformat(day), time(12), tzinfo=timezone.utc)
    return ManualClock(start=noon.timestamp())


def client_for(
    sb: SandboxServer, token: str | None = DEFAULT_TOKEN, *, cohere: bool = False
) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    base = sb.cohere_base_url if cohere else sb.cloudflare_base_url
    # verify=False: plain HTTP on loopback, and loading CA certificates costs 30 ms a client.
    return httpx.Client(base_url=base, headers=headers, timeout=30, verify=False)


@dataclass
class Served:
    line: str  # the one line serve() prints when it listens
    pid: int = 0  # the process's id (to kill it some other way than the SIGTERM at the end)
    out: str = ""  # what it printed after that line, until it stopped
    err: str = ""
    returncode: int | None = None


@contextmanager
def serve_process(data: Path, arguments: str = "", imports: str = "") -> Iterator[Served]:
    """Run `serve(..., ['serve-token']<arguments>)` in a new process; on leaving the block,
    stop it with SIGTERM and record how it ended (always killed if still running)."""
    code = (
        "import sys; from pathlib import Path; from reconciler.sandbox.server import serve; "
        f"{imports}serve('127.0.0.1', 0, Path(sys.argv[1]), ['serve-token']{arguments})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        served = Served(proc.stdout.readline(), proc.pid)
        yield served
        proc.send_signal(signal.SIGTERM)
        served.out, served.err = proc.communicate(timeout=20)
        served.returncode = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
