"""Writing JSON answers, and each emulated API's error shape (used by the app and by faults)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.cohere.api import is_cohere_path

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse


def send_json(
    start_response: StartResponse,
    status: int,
    body: Any,
    headers: Sequence[tuple[str, str]] = (),
) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            *headers,
        ],
    )
    return [payload]


def cloudflare_error(code: int, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


def error_body(path: str, cloudflare_code: int, message: str) -> dict[str, Any]:
    """An error in the shape of whichever API owns `path`."""
    if is_cohere_path(path):
        return {"message": message}
    return cloudflare_error(cloudflare_code, message)
