"""The sandbox's WSGI application: one server, two APIs, told apart by path.

`/v1/...` is Cohere (cohere.py): every answer is JSON, errors `{"message": ...}`. Everything
else is Cloudflare: routing, authentication and the response envelope are here, and every
answer, success or failure, is Cloudflare's JSON envelope. In both, an unexpected exception
becomes a 500 in the API's own shape and its traceback goes to the server log, never to the
client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.cloudflare.api import (
    AUTH_ERROR,
    BAD_AUTH_EMAIL,
    BAD_AUTHORIZATION,
    BAD_IDENTIFIER,
    INTERNAL_ERROR,
    INVALID_API_TOKEN,
    INVALID_HEADERS,
    METHOD_NOT_ALLOWED,
    MISSING_AUTH,
    NO_ROUTE,
    ROUTES,
    UNKNOWN_AUTH_KEY,
    ApiError,
    Call,
    CloudflareApi,
    Reply,
    fail,
)
from reconciler.sandbox.cloudflare.catalogue import Catalogue
from reconciler.sandbox.cloudflare.store import SandboxLimits, SandboxStore
from reconciler.sandbox.cohere.api import CohereApi, is_cohere_path
from reconciler.sandbox.cohere.store import CohereStore
from reconciler.sandbox.common.auth import Tokens, token_id, validate_tokens
from reconciler.sandbox.common.clock import Clock, SystemClock
from reconciler.sandbox.common.defaults import ACCOUNT_ID_RE, CLOUDFLARE_PREFIX, TOKEN_RE
from reconciler.sandbox.common.responses import cloudflare_error, send_json
from reconciler.sandbox.hub.api import HubApi, Served, is_hub_path
from reconciler.sandbox.hub.store import HubStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("reconciler.sandbox")

# The client went quiet past the server's read timeout, or went away, while the body was being
# read: nobody is left to answer. werkzeug's handler takes these as a dropped connection and
# closes it (server.py), instead of a 500 and a traceback in the log.
_CONNECTION_LOST = (TimeoutError, ConnectionError)

# Re-exported: the CLI validates --token values with it.
__all__ = ["SandboxApp", "token_id", "validate_tokens"]


class SandboxApp:
    def __init__(
        self,
        store: SandboxStore,
        tokens: Sequence[str],
        limits: SandboxLimits,
        request_log: list[tuple[str, str]] | None = None,
        *,
        clock: Clock | None = None,
        cohere_store: CohereStore | None = None,
        catalogue: Catalogue | None = None,
        hub_log: list[Served] | None = None,
    ) -> None:
        self.api = CloudflareApi(store, limits, catalogue)
        self.limits = limits
        self._tokens = Tokens(tokens)
        self.cohere = CohereApi(
            cohere_store if cohere_store is not None else CohereStore(store.data_dir),
            self._tokens,
            clock if clock is not None else SystemClock(),
            limits,
        )
        self.request_log: list[tuple[str, str]] = [] if request_log is None else request_log
        # /hf: the Hub's model-reading API (hub.py), repos filled by `sandbox hf-push`
        self.hub = HubApi(HubStore(store.data_dir), hub_log)
        self._log_lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        with self._log_lock:
            self.request_log.append((method, path))
        if is_hub_path(path):
            return self.hub(environ, start_response)
        if is_cohere_path(path):
            return self._cohere(environ, start_response, method, path)
        try:
            reply = self._dispatch(environ, method, path)
            status = reply.status
            body: dict[str, Any] = {
                "success": True,
                "errors": [],
                "messages": reply.messages,
            }
            if reply.with_result:
                body["result"] = reply.result
            if reply.result_info is not None:
                body["result_info"] = reply.result_info
        except ApiError as exc:
            status = exc.status
            body = {"success": False, "errors": exc.errors, "messages": [], "result": exc.result}
        except _CONNECTION_LOST:
            raise
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", method, path)
            status = 500
            body = cloudflare_error(INTERNAL_ERROR, "Internal server error")
        return send_json(start_response, status, body)

    def _cohere(
        self, environ: WSGIEnvironment, start_response: StartResponse, method: str, path: str
    ) -> Iterable[bytes]:
        try:
            status, body = self.cohere.respond(environ, method, path)
        except _CONNECTION_LOST:
            raise
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", method, path)
            status, body = 500, {"message": "internal server error"}
        return send_json(start_response, status, body)

    def _dispatch(self, environ: WSGIEnvironment, method: str, path: str) -> Reply:
        # Routing comes before authentication, as on the real API: an unknown URI is 7000
        # whatever the credentials.
        if not path.startswith(CLOUDFLARE_PREFIX + "/"):
            raise fail(400, NO_ROUTE, "No route for that URI")
        subpath = path[len(CLOUDFLARE_PREFIX) :]
        for route in ROUTES:
            match = route.pattern.fullmatch(subpath)
            if match:
                break
        else:
            raise fail(400, NO_ROUTE, "No route for that URI")
        handler = route.methods.get(method)
        if handler is None:
            raise fail(405, METHOD_NOT_ALLOWED, f"Method {method} not available for that URI.")
        params = {k: v for k, v in match.groupdict().items() if v is not None}
        account_id = params.get("account_id")
        if account_id is not None and not ACCOUNT_ID_RE.fullmatch(account_id):
            raise ApiError(
                400,
                [
                    {
                        "code": BAD_IDENTIFIER,
                        "message": f"Could not route to {subpath}, perhaps your object"
                        " identifier is invalid?",
                    },
                    {"code": NO_ROUTE, "message": "No route for that URI"},
                ],
            )
        caller = self._authenticate(environ, verifying=route.verifies_token)
        if account_id is not None and not self.limits.allows(account_id):
            # A valid token without rights on the account: 403 with 10000 on the real API.
            raise fail(403, AUTH_ERROR, "Authentication error")
        return handler(self.api, Call(environ, params, caller))

    def _authenticate(self, environ: WSGIEnvironment, *, verifying: bool) -> str:
        header = environ.get("HTTP_AUTHORIZATION")
        key = environ.get("HTTP_X_AUTH_KEY")
        if header is not None:
            parts = str(header).split(" ")
            if len(parts) != 2 or parts[0].lower() != "bearer" or not TOKEN_RE.fullmatch(parts[1]):
                raise fail(
                    400,
                    INVALID_HEADERS,
                    "Invalid request headers",
                    chain=((BAD_AUTHORIZATION, "Invalid format for Authorization header"),),
                )
            caller = self._tokens.known(parts[1])
            if caller is not None:
                return caller
            if verifying:
                raise fail(401, INVALID_API_TOKEN, "Invalid API Token")
            raise fail(401, AUTH_ERROR, "Authentication error")
        if key is not None:
            # Legacy scheme: X-Auth-Email + X-Auth-Key; the sandbox takes its tokens as keys.
            if "@" not in str(environ.get("HTTP_X_AUTH_EMAIL", "")):
                raise fail(
                    400,
                    INVALID_HEADERS,
                    "Invalid request headers",
                    chain=((BAD_AUTH_EMAIL, "Invalid format for X-Auth-Email header"),),
                )
            caller = self._tokens.known(str(key))
            if caller is None:
                raise fail(403, UNKNOWN_AUTH_KEY, "Unknown X-Auth-Key or X-Auth-Email")
            return caller
        raise fail(400, MISSING_AUTH, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
