"""Cohere's v1 API as a mounted WSGI app (under /v1): every answer is JSON, errors
`{"message": ...}` (api.py holds the routes); an unexpected exception becomes a 500 in that
shape and its traceback goes to the server log, never to the client."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.cohere.api import COHERE_PREFIX, CohereApi
from reconciler.sandbox.common.mount import CONNECTION_LOST
from reconciler.sandbox.common.responses import send_json

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("reconciler.sandbox")


class CohereApp:
    prefix = COHERE_PREFIX
    title = "Cohere API"
    base_path = ""  # CO_API_URL is the host root: the SDK adds /v1 itself

    def __init__(self, api: CohereApi) -> None:
        self.api = api

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        try:
            status, body = self.api.respond(environ, method, path)
        except CONNECTION_LOST:
            raise
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", method, path)
            status, body = 500, {"message": "internal server error"}
        return send_json(start_response, status, body)

    def fault_body(self, status: int) -> dict[str, Any]:
        """An injected error, worded as Cohere words its own (sandbox choice for the 429's)."""
        if status == 429:
            return {"message": "too many requests, please retry later"}
        return {"message": HTTPStatus(status).phrase.lower()}
