"""Writing JSON answers (every mount), header values that are safe to send, and Cloudflare's
error envelope."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse


# What a header value may carry as is: visible ASCII, space and tab. A CR or LF would end the
# header (or the head) and let a URL write headers of its own; other controls and non-ASCII
# characters are read differently by different clients.
_UNSAFE_IN_HEADER = re.compile(r"[^\t\x20-\x7e]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code in (0x0A, 0x0D):
        return "\\n" if code == 0x0A else "\\r"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def header_safe(value: str) -> str:
    """`value` with every character a header may not carry as is written as a visible
    backslash escape (`\\r`, `\\x00`, `\\u202e`), so that what a URL or a name put there is
    still readable and never ends the header."""
    return _UNSAFE_IN_HEADER.sub(_escaped, value)


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
