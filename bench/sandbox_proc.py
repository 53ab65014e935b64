"""A sandbox for the benchmarks, in its own process, optionally with latency on every request.

    python -m bench.sandbox_proc DATA_DIR [--latency SECONDS]

Prints {"url": ..., "latency_by": ...} once listening. Then reads commands on stdin: `log`
prints the request log as JSON (and clears it); end of input stops the server.

Latency: the sandbox's own fault injection (`faults=FaultSpec.parse("latency=50ms")`) when it
has it. Otherwise (older trees) a WSGI wrapper here sleeps before each request is handled, put
in where SandboxServer hands its app to werkzeug's make_server. Either way the delay comes
before the API handles the request, as a network round trip would.

Accounts: the sandbox serves the Cloudflare accounts it is told (any other answers 403); here,
the first 100 of bench/data.account, which the benchmarks' configs use (older trees serve any).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.data import account

SERVED_ACCOUNTS = 100


class Latency:
    def __init__(self, app: Callable[..., Iterable[bytes]], seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        time.sleep(self.seconds)
        return self.app(environ, start_response)


def _inject_latency(seconds: float) -> None:
    import werkzeug.serving

    make_server = werkzeug.serving.make_server

    def with_latency(host: str, port: int, app: Any, *args: Any, **kwargs: Any) -> Any:
        return make_server(host, port, Latency(app, seconds), *args, **kwargs)

    werkzeug.serving.make_server = with_latency


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    from reconciler.sandbox import DEFAULT_TOKEN
    from reconciler.sandbox.server import SandboxServer

    options: dict[str, Any] = {}
    latency_by = None
    if args.latency:
        try:
            from reconciler.sandbox.common.fault_spec import FaultSpec
        except ImportError:
            _inject_latency(args.latency)
            latency_by = "the benchmark's WSGI wrapper"
        else:
            options["faults"] = FaultSpec.parse(f"latency={args.latency * 1000:g}ms")
            latency_by = "the sandbox's fault injection (latency=...)"
    if "accounts" in inspect.signature(SandboxServer).parameters:
        options["accounts"] = [account(i) for i in range(SERVED_ACCOUNTS)]
    with SandboxServer(args.data_dir, tokens=(DEFAULT_TOKEN,), **options) as server:
        print(json.dumps({"url": server.cloudflare_base_url, "latency_by": latency_by}), flush=True)
        for line in sys.stdin:
            if line.strip() == "log":
                entries = list(server.request_log)
                del server.request_log[: len(entries)]
                print(json.dumps(entries), flush=True)


if __name__ == "__main__":
    main()
