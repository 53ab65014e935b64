"""The sandbox's WSGI application: one server, many APIs, each mounted under its own prefix.

A request goes to the mount that owns its path (common/mount.py: the prefix itself or below
it, the longest prefix first), with the environ unchanged; the mount answers in its own API's
shape, its errors and unexpected exceptions (a 500) included. Every request is recorded in
`request_log`, whoever answers it.

A path no mount owns is answered 404 in the sandbox's neutral shape
(`{"error": {"status": 404, "message": ...}}`, naming the prefixes that are served), since no
API owns it to choose a shape; paths under Cloudflare's /client/v4 that match no route are
Cloudflare's and keep its 400/7000 "No route for that URI" envelope. Should a mount let an
exception escape, the app logs it and answers a neutral 500, never the traceback.

Whatever a mount answers, no header value leaves with a CR, an LF or another character a
header may not carry (common/responses.header_safe escapes them): a mount that echoes part of
the URL or a stored name in a header cannot let the request write headers of its own.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.common.auth import token_id, validate_tokens
from reconciler.sandbox.common.mount import CONNECTION_LOST, Mounted, neutral_error, owner
from reconciler.sandbox.common.responses import header_safe, send_json

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("reconciler.sandbox")

# Re-exported: the CLI validated --token values with it from here.
__all__ = ["SandboxApp", "token_id", "validate_tokens"]


class SandboxApp:
    def __init__(
        self, mounts: Sequence[Mounted], request_log: list[tuple[str, str]] | None = None
    ) -> None:
        self.mounts = tuple(mounts)
        self.request_log: list[tuple[str, str]] = [] if request_log is None else request_log
        self._log_lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._route(environ, _safe_headers(start_response))

    def _route(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        with self._log_lock:
            self.request_log.append((method, path))
        mounted = owner(self.mounts, path)
        if mounted is None:
            served = ", ".join(sorted(m.prefix for m in self.mounts))
            message = f"No emulated API at this path; the sandbox serves {served}"
            return send_json(start_response, 404, neutral_error(404, message))
        try:
            return mounted(environ, start_response)
        except CONNECTION_LOST:
            raise
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", method, path)
            payload = json.dumps(neutral_error(500, "Internal Server Error")).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
            # With exc_info: the mount may have started its answer; if its headers are already
            # sent, the server re-raises and drops the connection.
            start_response("500 Internal Server Error", headers, sys.exc_info())
            return [payload]


def _safe_headers(start_response: StartResponse) -> StartResponse:
    """`start_response`, with every header value (and the status line) made safe to send."""

    def start(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        safe = [(name, header_safe(value)) for name, value in headers]
        return start_response(header_safe(status), safe, exc_info)

    return start
