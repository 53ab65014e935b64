"""Cloudflare's API as a mounted WSGI app (under /client/v4): routing, authentication and the
response envelope. Every answer, success or failure, is Cloudflare's JSON envelope; an
unexpected exception becomes a 500 envelope (code 10001) and its traceback goes to the server
log, never to the client. The routes themselves are in api.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.cloudflare.accounts import Accounts
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
from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.defaults import ACCOUNT_ID_RE, CLOUDFLARE_PREFIX, TOKEN_RE
from reconciler.sandbox.common.mount import CONNECTION_LOST
from reconciler.sandbox.common.responses import cloudflare_error, send_json

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("reconciler.sandbox")

RATE_LIMITED = 971  # "Please wait and consider throttling your request speed"
RATE_LIMITED_MESSAGE = "Please wait and consider throttling your request speed"


class CloudflareApp:
    prefix = CLOUDFLARE_PREFIX
    title = "Cloudflare API"
    base_path = CLOUDFLARE_PREFIX
    rate_limited = True  # Cloudflare publishes a per-token limit (fault_spec: rate_limit)

    def __init__(
        self, api: CloudflareApi, tokens: Tokens, accounts: Accounts | None = None
    ) -> None:
        self.api = api
        self._tokens = tokens
        self.accounts = accounts if accounts is not None else Accounts()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
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
        except CONNECTION_LOST:
            raise
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", method, path)
            status = 500
            body = cloudflare_error(INTERNAL_ERROR, "Internal server error")
        return send_json(start_response, status, body)

    def fault_body(self, status: int) -> dict[str, Any]:
        """An injected error: 971 for a 429, as Cloudflare throttles; 10001 (sandbox choice)
        with the status's phrase for the others."""
        if status == 429:
            return cloudflare_error(RATE_LIMITED, RATE_LIMITED_MESSAGE)
        return cloudflare_error(INTERNAL_ERROR, HTTPStatus(status).phrase)

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
        if account_id is not None and account_id not in self.accounts:
            # A valid token without rights on the account: 403 with 10000 on the real API
            # (api-notes.md), whatever the route under /accounts/{id}.
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
