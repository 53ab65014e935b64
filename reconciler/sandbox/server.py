"""Running the sandbox: a threaded HTTP server on loopback, in the background or the foreground."""

from __future__ import annotations

import ipaddress
import signal
import socket
import sqlite3
import struct
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from reconciler.sandbox import mounts as registry
from reconciler.sandbox.app import SandboxApp
from reconciler.sandbox.cloudflare.accounts import Accounts
from reconciler.sandbox.cloudflare.catalogue import Catalogue
from reconciler.sandbox.cloudflare.store import SandboxStore
from reconciler.sandbox.cohere.store import CohereStore
from reconciler.sandbox.common.auth import Tokens, validate_tokens
from reconciler.sandbox.common.clock import Clock, SystemClock
from reconciler.sandbox.common.db import state_problem
from reconciler.sandbox.common.defaults import (
    CLOUDFLARE_PREFIX,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_HOST,
    DEFAULT_TOKEN,
)
from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.common.faults import FaultInjector, InjectedFault, ResetConnection
from reconciler.sandbox.common.limits import SandboxLimits
from reconciler.sandbox.common.mount import MountContext, Mounted, base_path_of, title_of
from reconciler.sandbox.hub.api import PREFIX as HUB_PREFIX
from reconciler.sandbox.hub.api import Served

# How long a connection may wait for its request line, and then how long any read of the rest
# (headers, body) may wait for a byte. Sandbox choices, not Cloudflare's or Cohere's figures:
# long enough for any client that is sending (clients write the request as soon as they
# connect, and werkzeug closes each connection after one answer, so there is no keep-alive
# wait), short enough that a silent or half-sent connection does not hold a thread for ever.
IDLE_TIMEOUT = 15.0
READ_TIMEOUT = 60.0

# The options the server itself hands the built-in mounts (from its own arguments and state);
# `options=` may not repeat them.
SERVER_OPTIONS = (
    "limits",
    "catalogue",
    "cloudflare_store",
    "cloudflare_accounts",
    "cohere_store",
    "hub_log",
)


def _handler(access_log: bool, idle_timeout: float, read_timeout: float) -> Any:
    """werkzeug's request handler, able to cut connections for faults.py, closing connections
    that go quiet; without the per-request access log unless asked (tests make thousands of
    requests)."""
    from werkzeug.serving import WSGIRequestHandler

    class SandboxHandler(WSGIRequestHandler):
        _abort = False
        # socketserver applies this to the connection in setup(): the wait for the request
        # line. http.server answers a timeout there by closing the connection.
        timeout = idle_timeout

        def parse_request(self) -> bool:
            # The request line is in: from here on each read may wait `read_timeout`. A timeout
            # while reading headers closes the connection (http.server); one while the app
            # reads the body reaches the app, which lets it through to connection_dropped.
            self.connection.settimeout(read_timeout)
            return bool(super().parse_request())

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if access_log:
                super().log_request(code, size)

        def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
            # Reached for real client disconnects and for faults.py's Drop/ResetConnection:
            # either way nothing more can be said on this connection.
            self.close_connection = True
            self._abort = isinstance(error, ResetConnection)

        def finish(self) -> None:
            super().finish()
            if self._abort:
                # Linger 0 makes close() abort the connection: the client gets RST, not FIN.
                # The server's own shutdown/close that follow are no-ops on a closed socket.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()

    return SandboxHandler


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or a name that resolves only to loopback)."""
    name = host.strip("[]")
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    if name.lower() == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def exposure_problem(host: str, tokens: Sequence[str]) -> str | None:
    """Why the sandbox must not listen on `host` with these tokens, or None if it may.

    Beyond loopback anyone who reaches the port can call the sandbox; with the documented
    default token (printed in the README and by `reconciler sandbox`) that is anyone at all.
    """
    if is_loopback(host) or DEFAULT_TOKEN not in tokens:
        return None
    return (
        f"refusing to listen on {host}, which is not a loopback address, while accepting the"
        " documented default sandbox token: anyone who can reach the port could use it. Pass"
        " --token with a token of your own (not the default one), or listen on 127.0.0.1."
    )


class StateError(Exception):
    """The state folder cannot be used (not a folder, a database that is not one, a FIFO in
    its place); str() names the folder and the problem."""


class SandboxServer:
    """The sandbox on a real socket, served from a background thread.

    Use as a context manager, or call start() and stop(). port=0 picks a free port. Serves
    every API of the registry (mounts.py), each at `url_for(prefix)`: Cloudflare at
    `cloudflare_base_url`, Cohere at `cohere_base_url` (the host root, as CO_API_URL wants it),
    the Hub at `hub_url`.

    accounts: the Cloudflare account ids served (cloudflare/accounts.py); any other answers
    403 with code 10000. Default: the documented DEFAULT_ACCOUNT_ID alone. `accounts.add()`
    serves more while the server runs.
    clock_speed: how many simulated seconds pass per real second for Cohere's dataset
    validation and training (clock.py); or pass a `clock` (e.g. ManualClock) to drive time.
    The clock is also the APIs' "today" (Cloudflare retires a model on its deprecation date).
    faults: what to inject (faults.py); what was injected is appended to `fault_log`.
    catalogue: the Workers AI model catalogue (catalogue.py), or a file that extends or
    replaces the bundled one; by default the bundled one, extended by the file
    RECONCILER_SANDBOX_CATALOGUE names.
    idle_timeout, read_timeout: see IDLE_TIMEOUT and READ_TIMEOUT.
    options: each mount's own options (MountContext.options, e.g. {"vllm_replicas": 3}),
    beside the SERVER_OPTIONS the server fills from its other arguments.
    mounts: the APIs to serve, as "module:factory" entries; by default the registry's.

    Refuses (ValueError) to listen beyond loopback while accepting the documented default
    token, which anyone can read in the README.
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
        clock_speed: float = 1.0,
        clock: Clock | None = None,
        faults: FaultSpec | None = None,
        catalogue: Catalogue | Path | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        options: Mapping[str, Any] | None = None,
        mounts: Sequence[str] = registry.MOUNTS,
        accounts: Sequence[str] = (DEFAULT_ACCOUNT_ID,),
    ) -> None:
        if clock is not None and clock_speed != 1.0:
            raise ValueError("give the clock its speed, or pass clock_speed without a clock")
        if not (idle_timeout > 0 and read_timeout > 0):
            raise ValueError("timeouts must be positive numbers of seconds")
        self.options = dict(options or {})
        self.mount_entries = tuple(mounts)
        taken = sorted(set(self.options) & set(SERVER_OPTIONS))
        if taken:
            raise ValueError(f"options may not set {taken}: the server sets them itself")
        self.data_dir = Path(data_dir)
        self.tokens = validate_tokens(tokens)
        if isinstance(accounts, str):  # one id, not its characters
            raise TypeError("accounts is a sequence of account ids, not one string")
        self.accounts = Accounts(accounts)
        problem = exposure_problem(host, self.tokens)
        if problem is not None:
            raise ValueError(problem)
        self.host = host
        # None: the bundled catalogue, extended by RECONCILER_SANDBOX_CATALOGUE if it is set.
        if catalogue is None:
            catalogue = Catalogue.from_env()
        elif not isinstance(catalogue, Catalogue):
            catalogue = Catalogue.load(Path(catalogue))
        self.catalogue = catalogue
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.limits = limits if limits is not None else SandboxLimits()
        self.clock: Clock = clock if clock is not None else SystemClock(clock_speed)
        self.faults = faults
        self.request_log: list[tuple[str, str]] = []
        self.hub_log: list[Served] = []  # what the Hub at /hf sent: tests count bytes
        self.fault_log: list[InjectedFault] = []
        self._port = port
        self._access_log = access_log
        self._store: SandboxStore | None = None
        self._cohere_store: CohereStore | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._mounts: tuple[Mounted, ...] = ()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox server is not running")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, prefix: str) -> str:
        """The URL of the mount at `prefix` ("/client/v4")."""
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"a mount prefix starts with '/' and does not end with it: {prefix!r}")
        return self.url + prefix

    @property
    def mounts(self) -> tuple[Mounted, ...]:
        """The mounted APIs, once started."""
        if self._server is None:
            raise RuntimeError("the sandbox server is not running")
        return self._mounts

    def endpoints(self) -> list[tuple[str, str]]:
        """(title, base URL) of every mounted API, in the registry's order."""
        return [(title_of(m), self.url + base_path_of(m)) for m in self.mounts]

    @property
    def cloudflare_base_url(self) -> str:
        return self.url_for(CLOUDFLARE_PREFIX)

    @property
    def cohere_base_url(self) -> str:
        return self.url

    @property
    def hub_url(self) -> str:
        """HF_ENDPOINT for huggingface_hub: the sandbox's Hub."""
        return self.url_for(HUB_PREFIX)

    @property
    def store(self) -> SandboxStore:
        """Direct access to the state, for tests that check what was stored (asset digests)."""
        if self._store is None:
            self._store = SandboxStore(self.data_dir)
        return self._store

    @property
    def cohere_store(self) -> CohereStore:
        if self._cohere_store is None:
            self._cohere_store = CohereStore(self.data_dir)
        return self._cohere_store

    def start(self) -> SandboxServer:
        if self._server is not None:
            raise RuntimeError("the sandbox server is already running")
        from werkzeug.serving import make_server

        mounts = self._build_mounts()
        app: Any = SandboxApp(mounts, self.request_log)
        if self.faults is not None:
            app = FaultInjector(app, self.faults, self.fault_log, self.clock, mounts=mounts)
        handler = _handler(self._access_log, self.idle_timeout, self.read_timeout)
        self._server = make_server(
            self.host, self._port, app, threaded=True, request_handler=handler
        )
        self._mounts = mounts
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # shutdown() waits up to one poll interval; the default 0.5 s adds up over a suite.
            kwargs={"poll_interval": 0.02},
            name=f"reconciler-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def _build_mounts(self) -> tuple[Mounted, ...]:
        """Every mount, over the state folder; StateError if the folder cannot hold the state
        (checked first, then what opening it raises: a file that is no database, a folder
        that cannot be made)."""
        problem = state_problem(self.data_dir)
        if problem is None:
            try:
                return registry.build(self._context(), self.mount_entries)
            except OSError as exc:
                problem = exc.strerror or str(exc)
            except sqlite3.DatabaseError as exc:
                problem = str(exc)
        self._store = self._cohere_store = None
        raise StateError(f"the sandbox cannot use its state folder {self.data_dir}: {problem}")

    def _context(self) -> MountContext:
        """What every mount is given; the stores are the server's own, so that `store` and
        `cohere_store` show (and tests may patch) the state the APIs keep."""
        options = {
            **self.options,
            "limits": self.limits,
            "catalogue": self.catalogue,
            "cloudflare_store": self.store,
            "cloudflare_accounts": self.accounts,
            "cohere_store": self.cohere_store,
            "hub_log": self.hub_log,
        }
        return MountContext(self.data_dir, Tokens(self.tokens), self.clock, options)

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
        self._mounts = ()

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
    *,
    clock_speed: float = 1.0,
    faults: FaultSpec | None = None,
    catalogue: Catalogue | Path | None = None,
    options: Mapping[str, Any] | None = None,
    accounts: Sequence[str] = (DEFAULT_ACCOUNT_ID,),
) -> None:
    """Run the sandbox in the foreground until Ctrl-C or SIGTERM, then stop cleanly.

    Prints exactly one line: where each API listens (and the faults, if any).
    """
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    sandbox = SandboxServer(
        data_dir,
        tokens,
        host,
        port,
        limits,
        access_log=True,
        clock_speed=clock_speed,
        faults=faults,
        catalogue=catalogue,
        options=options,
        accounts=accounts,
    )
    try:
        sandbox.start()
        where = ", ".join(f"{title} at {url}" for title, url in sandbox.endpoints())
        extras = "" if clock_speed == 1.0 else f", clock x{clock_speed:g}"
        if faults is not None:
            extras += f", injecting faults ({faults.describe()})"
        print(f"reconciler sandbox: {where}{extras} (Ctrl-C to stop)", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
