"""A fleet of vLLM OpenAI-compatible servers under /vllm: replica i at /vllm/<i>/ (its base URL
for an OpenAI client is http://HOST:PORT/vllm/<i>/v1). What each replica serves is api.py's;
the options are options.py's.

The sandbox's own control routes, per replica, need a sandbox token
(`Authorization: Bearer <token>`, one of MountContext.tokens) and are answered whatever the
replica's state:

    POST /vllm/<i>/_sandbox/restart   the server restarts: every adapter forgotten, up again
    POST /vllm/<i>/_sandbox/down      the server stops answering; body {"mode": ...} optional:
                                      "closed" (default): every request's connection is closed
                                        without an answer, as a crashed or unreachable server
                                        (clients see a transport error, not a status);
                                      "503": every request gets 503 with an empty body, as a
                                        proxy in front of a stopped server answers
    POST /vllm/<i>/_sandbox/up        answering again, adapters kept (an outage, not a restart;
                                      a crash that lost them is down, then restart)
    GET  /vllm/<i>/_sandbox/state     {"replica", "up", "down_mode", "adapters"}

A load in flight when its replica goes down completes on the server and its answer is lost
(the client cannot know whether it happened); one in flight across a restart is lost with the
old process. State lives in memory only: restarting the sandbox process restarts every replica.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.common.auth import Tokens, bearer
from reconciler.sandbox.common.mount import MountContext, Mounted
from reconciler.sandbox.vllm.api import ReplicaApi
from reconciler.sandbox.vllm.options import FleetOptions, read_options
from reconciler.sandbox.vllm.replica import Replica, ReplicaGone
from reconciler.sandbox.vllm.wire import WireError, drain, read_body, send, send_error, send_json

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

PREFIX = "/vllm"
DOWN_MODES = ("closed", "503")
_PATH = re.compile(r"/(?P<index>0|[1-9][0-9]*)(?P<rest>/.*)?")
_CONTROL = {"restart": "POST", "down": "POST", "up": "POST", "state": "GET"}


class ConnectionClosed(ConnectionError):
    """No answer: werkzeug's server takes any ConnectionError from the app as a connection
    gone and writes nothing (as it does for faults.py's DropConnection, which is not imported
    here: common.faults imports another emulated API)."""


def _close(environ: WSGIEnvironment, why: str) -> Iterable[bytes]:
    """End the connection without an answer: the rest of the request is read first, so the
    client gets a clean EOF; then the socket is shut down (werkzeug's server would otherwise
    wait for the next request on a keep-alive connection)."""
    drain(environ)
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionClosed(why)


class VllmFleet:
    prefix = PREFIX
    title = "vLLM fleet"

    def fault_body(self, status: int) -> Any:
        """An injected error in vLLM's ErrorResponse shape (wire.error)."""
        kind = "BadRequestError" if status < 500 else "InternalServerError"
        return {"error": {"message": "injected fault", "type": kind, "param": None, "code": status}}

    def __init__(self, options: FleetOptions, tokens: Tokens, context: MountContext) -> None:
        self.options = options
        self.tokens = tokens
        state = context.data_dir / "vllm"
        self.replicas = [
            Replica(i, options, state / f"replica-{i}.json") for i in range(options.replicas)
        ]
        self._apis = [ReplicaApi(r, options, context.clock) for r in self.replicas]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))[len(PREFIX) :]
        match = _PATH.fullmatch(path)
        if match is None or int(match["index"]) >= len(self.replicas):
            return send_json(start_response, 404, {"detail": "Not Found"})
        index, rest = int(match["index"]), match["rest"] or ""
        try:
            if rest.startswith("/_sandbox/"):
                return self._control(environ, start_response, index, rest[len("/_sandbox/") :])
            return self._serve(environ, start_response, index, rest)
        except WireError as exc:
            return send_error(start_response, exc)

    def _serve(
        self, environ: WSGIEnvironment, start_response: StartResponse, index: int, rest: str
    ) -> Iterable[bytes]:
        replica = self.replicas[index]
        if replica.down == "503":
            drain(environ)
            return send(start_response, 503, b"", None)
        if replica.down is not None:
            return _close(environ, f"sandbox: vLLM replica {index} is down")
        try:
            answer = self._apis[index](environ, start_response, rest)
        except ReplicaGone as exc:
            return _close(environ, str(exc))
        if replica.down == "closed":
            # It went down while this request was in it: the work is done, the answer lost.
            return _close(environ, f"sandbox: vLLM replica {index} went down")
        return answer

    def _control(
        self, environ: WSGIEnvironment, start_response: StartResponse, index: int, action: str
    ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        token = bearer(str(environ.get("HTTP_AUTHORIZATION", "")))
        if token is None or self.tokens.known(token) is None:
            body = {"detail": "a sandbox token is required: Authorization: Bearer <token>"}
            return send_json(start_response, 401, body)
        wanted = _CONTROL.get(action)
        if wanted is None:
            return send_json(start_response, 404, {"detail": "Not Found"})
        if method != wanted:
            return send_json(start_response, 405, {"detail": "Method Not Allowed"})
        replica = self.replicas[index]
        if action == "restart":
            replica.restart()
        elif action == "down":
            replica.down = _down_mode(read_body(environ))
        elif action == "up":
            replica.down = None
        return send_json(start_response, 200, _state(replica))


def _down_mode(raw: bytes) -> str:
    if not raw.strip():
        return DOWN_MODES[0]
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    mode = body.get("mode", DOWN_MODES[0]) if isinstance(body, dict) else None
    if mode not in DOWN_MODES:
        detail = 'the body must be {"mode": "closed"} or {"mode": "503"}, or empty'
        raise WireError(400, {"detail": detail})
    return str(mode)


def _state(replica: Replica) -> dict[str, Any]:
    return {
        "replica": replica.index,
        "up": replica.down is None,
        "down_mode": replica.down,
        "adapters": [a.name for a in replica.adapters()],
    }


def mount(context: MountContext) -> Mounted:
    """The vLLM fleet for the sandbox app (ValueError on bad options, before anything serves)."""
    return VllmFleet(read_options(context.options), context.tokens, context)
