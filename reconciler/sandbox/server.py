"""Running the sandbox: a threaded HTTP server on loopback, in the background or the foreground."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from reconciler.sandbox.app import SandboxApp, validate_tokens
from reconciler.sandbox.defaults import CLOUDFLARE_PREFIX, DEFAULT_HOST, DEFAULT_TOKEN
from reconciler.sandbox.store import SandboxLimits, SandboxStore


def _quiet_handler() -> Any:
    """werkzeug's request handler minus the per-request access log (tests make thousands)."""
    from werkzeug.serving import WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    return QuietHandler


class SandboxServer:
    """The sandbox on a real socket, served from a background thread.

    Use as a context manager, or call start() and stop(). port=0 picks a free port.
    """

    def __init__(
        self,
        data_dir: Path,
        tokens: Sequence[str] = (DEFAULT_TOKEN,),
        host: str = DEFAULT_HOST,
        port: int = 0,
        limits: SandboxLimits | None = None,
        *,
        access_log: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.tokens = validate_tokens(tokens)
        self.host = host
        self.limits = limits if limits is not None else SandboxLimits()
        self.request_log: list[tuple[str, str]] = []
        self._port = port
        self._access_log = access_log
        self._store: SandboxStore | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox server is not running")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def cloudflare_base_url(self) -> str:
        return self.url + CLOUDFLARE_PREFIX

    @property
    def store(self) -> SandboxStore:
        """Direct access to the state, for tests that check what was stored (asset digests)."""
        if self._store is None:
            self._store = SandboxStore(self.data_dir)
        return self._store

    def start(self) -> SandboxServer:
        if self._server is not None:
            raise RuntimeError("the sandbox server is already running")
        from werkzeug.serving import make_server

        app = SandboxApp(self.store, self.tokens, self.limits, self.request_log)
        handler = None if self._access_log else _quiet_handler()
        self._server = make_server(
            self.host, self._port, app, threaded=True, request_handler=handler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # shutdown() waits up to one poll interval; the default 0.5 s adds up over a suite.
            kwargs={"poll_interval": 0.05},
            name=f"reconciler-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join()
        server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    host: str,
    port: int,
    data_dir: Path,
    tokens: Sequence[str],
    limits: SandboxLimits | None = None,
) -> None:
    """Run the sandbox in the foreground until Ctrl-C or SIGTERM, then stop cleanly."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    sandbox = SandboxServer(data_dir, tokens, host, port, limits, access_log=True)
    try:
        sandbox.start()
        print(
            f"reconciler sandbox: Cloudflare API at {sandbox.cloudflare_base_url} (Ctrl-C to stop)",
            flush=True,
        )
        while not stopping.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
