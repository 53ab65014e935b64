"""Fireworks' gRPC-gateway, as every call meets it: the error body, paths, paging.

The API is grpc-gateway style (byo-lora-providers.md 1.2): an error is `{"code": <google.rpc
code>, "message": "...", "details": []}` with the code's HTTP status; a List answers
`{"<collection>": [...], "nextPageToken": "...", "totalSize": n}`, and an empty or absent
nextPageToken ends it. `Gateway` is providers/http.Api (retries, redaction, our errors) plus
those shapes, shared by the models calls (api.py) and the serving calls (serving.py).
"""

from __future__ import annotations

from typing import Any

from reconciler.base.credentials import redact
from reconciler.base.errors import EndpointError, ProviderError
from reconciler.base.untrusted import visible
from reconciler.providers.endpoint import Endpoint
from reconciler.providers.fireworks.env import TOKEN_ENV, URL_ENV
from reconciler.providers.fireworks.records import REMOTE_ID
from reconciler.providers.http import MAX_REMOTE_TEXT, Api

PAGE_SIZE = 200  # the most a List returns ("values above 200 will be coerced to 200")
MAX_PAGES = 500  # 100,000 items: a server that pages on past this is not the API
MAX_TOKEN = 1024
# google.rpc codes: the body's "code" is the number (grpc-gateway) or, some say, the name
CODES = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


def code_name(body: Any) -> str | None:
    """The gRPC code of an error body, by name ("NOT_FOUND"), or None."""
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, int) and not isinstance(code, bool):
        return CODES.get(code)
    return code if isinstance(code, str) and code in CODES.values() else None


def is_error(body: Any) -> bool:
    """Whether an answer is an error body: no resource or validateUpload answer has a
    top-level code or message (a resource's status is nested)."""
    return isinstance(body, dict) and ("code" in body or "message" in body)


def error_text(body: Any) -> str:
    """A gRPC-gateway error body as text: 'message [code: NAME]'."""
    if not isinstance(body, dict):
        return ""
    message = body.get("message")
    text = message if isinstance(message, str) else ""
    name = code_name(body)
    return f"{text} [code: {name}]" if name else text


def account_path(account: str) -> str:
    """/v1/accounts/<account>: the account checked first, as it becomes a path segment."""
    if not REMOTE_ID.fullmatch(account):
        raise ProviderError(f"{account!r} is not a Fireworks account id")
    return f"/v1/accounts/{account}"


def segment(value: str, what: str) -> str:
    """An id checked before it becomes a path segment."""
    if not REMOTE_ID.fullmatch(value):
        raise ProviderError(f"{value!r} is not a Fireworks {what} id")
    return value


class Gateway:
    """One endpoint's calls, in the gateway's shapes. Raises our errors, never httpx's."""

    def __init__(self, endpoint: Endpoint, transport: Any = None) -> None:
        self.api = Api.for_endpoint(endpoint, TOKEN_ENV, URL_ENV, error_text, transport)
        self._secrets = [endpoint.token]

    def close(self) -> None:
        self.api.close()

    def clean(self, text: str) -> str:
        """Remote text as one visible line, bounded, with no secret in it."""
        text = visible(redact(text, self._secrets))
        return text if len(text) <= MAX_REMOTE_TEXT else text[: MAX_REMOTE_TEXT - 1] + "…"

    def gone(self, what: str, body: Any) -> bool:
        """Whether an answer taken with ok=(200, 404) is NOT_FOUND; another error raises."""
        if not is_error(body):
            return False
        if code_name(body) == "NOT_FOUND":
            return True
        raise ProviderError(f"{what}: {self.clean(error_text(body))}")

    def read_all(self, what: str, path: str, key: str) -> list[Any]:
        """Every item of a List, following nextPageToken (pageSize 200) until it is empty;
        a token given before, or more than MAX_PAGES pages, is an EndpointError."""
        items: list[Any] = []
        seen: set[str] = set()
        token = ""
        for page in range(1, MAX_PAGES + 1):
            said = f"{what} (page {page})"
            params = {"pageSize": PAGE_SIZE, **({"pageToken": token} if token else {})}
            found, token = _page(self.api.call(said, "GET", path, params=params), said, key)
            items += found
            if not token:
                return items
            if token in seen:
                raise EndpointError(f"{said}: the API gave a page token it gave before")
            seen.add(token)
        raise EndpointError(f"{what}: more than {MAX_PAGES} pages")


def _page(body: Any, what: str, key: str) -> tuple[list[Any], str]:
    """The items of one List page and its nextPageToken ("" at the end)."""
    if not isinstance(body, dict):
        raise EndpointError(f"{what}: the answer is not a JSON object")
    items = body.get(key) or []
    token = body.get("nextPageToken") or ""
    if not isinstance(items, list) or len(items) > PAGE_SIZE:
        raise EndpointError(f"{what}: {key} is not a list of at most {PAGE_SIZE}")
    if not isinstance(token, str) or len(token) > MAX_TOKEN or not token.isprintable():
        raise EndpointError(f"{what}: nextPageToken is not a page token")
    return items, token
