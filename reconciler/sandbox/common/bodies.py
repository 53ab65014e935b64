"""Reading a JSON request body, bounded: every emulated API reads its JSON through here.

Bounded in size (the body is read to at most `max_bytes` + 1) and in depth (nesting is counted
on the raw text before any parser recurses, so `[[[[...` 100,000 deep is refused in one linear
pass instead of exhausting the parser's recursion). Strict beyond the standard library's
`json.loads`: `NaN` and `Infinity` are not JSON (RFC 8259), and a string holding a lone UTF-16
surrogate (`"\\ud800"`) is no text any API could store. Each refusal is a `BodyRefused`, which
an API answers in its own shape: a 413 for `BodyTooLarge`, a 400 for the others.

Sandbox choices: MAX_JSON_BYTES (no API publishes a limit for these bodies, which are a few
hundred bytes) and MAX_JSON_DEPTH (the real APIs' parsers go deeper; no body any of them
documents goes past 4 levels, so 64 refuses only what no client sends).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 64

# A JSON string, escapes included, up to its closing quote or, unterminated, to the end of the
# text: the closing quote is optional so that a match from a quote never fails. (Required, a
# text whose every quote is escaped failed from each quote in turn: quadratic, days for 1 MiB.)
# The parser agrees on where strings end; one left open is an error it finds without recursing.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Only an escape can put a lone surrogate in a parsed string (UTF-8 input cannot carry one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]", re.ASCII)


class BodyRefused(ValueError):
    """A body no API would read; str() says why, without quoting the body."""


class BodyTooLarge(BodyRefused):
    pass


class NotJson(BodyRefused):
    pass


class TooDeep(BodyRefused):
    pass


def too_deep(text: str, max_depth: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than `max_depth` (brackets inside
    strings are text and do not count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise NotJson(f"{name} is not JSON")


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(item) for item in value)
    return False


def parse_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of `raw` (UTF-8 if bytes); NotJson or TooDeep otherwise."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise NotJson("not UTF-8") from None
    if too_deep(text, max_depth):
        raise TooDeep(f"nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except NotJson:
        raise
    except ValueError as exc:  # JSONDecodeError, and integers past 4300 digits
        raise NotJson(str(exc)) from None
    except RecursionError:  # not reached after too_deep; kept so no depth can ever be a 500
        raise TooDeep(f"nested deeper than {max_depth} levels") from None
    if _SURROGATE_ESCAPE.search(text) and _lone_surrogate(value):
        raise NotJson("a string holds a lone UTF-16 surrogate, which is no text")
    return value


def read_body(environ: WSGIEnvironment, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The request body, read to at most `max_bytes`; BodyTooLarge past it."""
    from werkzeug.wsgi import get_input_stream

    raw = get_input_stream(environ, max_content_length=None).read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise BodyTooLarge(f"larger than {max_bytes:,} bytes")
    return bytes(raw)


def read_json(
    environ: WSGIEnvironment,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """The request body as JSON, whatever Content-Type says (wrangler sends text/plain)."""
    return parse_json(read_body(environ, max_bytes), max_depth)
