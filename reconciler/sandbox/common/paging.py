"""Opaque page tokens: keyset cursors, signed so a client can neither forge nor reuse them.

A token names the list it belongs to (its scope, e.g. the events of one model in one order)
and the sort key of the last item served. Keyset rather than offset: an item created or
deleted between two pages neither repeats nor skips anything. The signing key lives in the
database, so tokens stay valid across a restart of the sandbox.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
Key = tuple[int, ...]

DEFAULT_PAGE_SIZE = 50  # the spec: "If 0, defaults to 50"
# Sandbox choice: no maximum is published; a larger ask is served this many, as Google-style
# APIs (which Cohere's follows: page_size/page_token/next_page_token) do.
MAX_PAGE_SIZE = 1000
# Cohere's spec types page_size as int32: a larger value is not a page size at all.
MAX_INT32 = 2**31 - 1
# The largest count any query parameter may carry (SQLite's integers are 64-bit; a larger one
# used to reach SQLite and come back as a 500). Sandbox choice: such a value is a 400.
MAX_INT64 = 2**63 - 1


class BadPageToken(ValueError):
    pass


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str  # "" on the last page, as the API says
    total: int


class Pager:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: bytes) -> str:
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def encode(self, scope: str, key: Key) -> str:
        payload = json.dumps([scope, list(key)], separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(payload)}"

    def decode(self, scope: str, token: str) -> Key:
        body, _, signature = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise BadPageToken("invalid page_token") from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise BadPageToken("invalid page_token")
        found_scope, key = json.loads(payload)
        if found_scope != scope:
            # A real token, but from another list (or the same list in another order).
            raise BadPageToken("page_token does not belong to this request")
        return tuple(int(k) for k in key)

    def page(
        self,
        items: Sequence[T],
        key: Callable[[T], Key],
        *,
        scope: str,
        size: int,
        token: str,
        descending: bool,
    ) -> Page[T]:
        """One page of items, which must already be sorted ascending by key."""
        ordered = list(reversed(items)) if descending else list(items)
        if token:
            after = self.decode(scope, token)
            if descending:
                ordered = [i for i in ordered if key(i) < after]
            else:
                ordered = [i for i in ordered if key(i) > after]
        served = ordered[:size]
        more = len(ordered) > size
        next_token = self.encode(scope, key(served[-1])) if more and served else ""
        return Page(served, next_token, len(items))


def page_size(raw: str | None) -> int:
    """`page_size` from the query: 0 or absent means the default; negative is an error."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        number = float(raw)
    except ValueError:
        number = -1.0
    if number < 0 or not number.is_integer() or number > MAX_INT32:
        raise ValueError(
            f"invalid page_size {raw!r}: must be an integer from 0 to {MAX_INT32} (int32)"
        )
    size = int(number)
    return DEFAULT_PAGE_SIZE if size == 0 else min(size, MAX_PAGE_SIZE)


def whole_number(raw: str | None, maximum: int = MAX_INT64) -> int | None:
    """A query parameter that must be a whole number from 0 to `maximum` (None when absent).
    The SDKs type these as floats, so `2.0` is accepted. Raises ValueError otherwise."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    # Digits alone are read exactly: float() would round 9223372036854775808 into range.
    if text.isascii() and text.isdigit():
        number = int(text)
    else:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(raw) from None
        if not value.is_integer():  # also nan and inf
            raise ValueError(raw)
        number = int(value)
    if number < 0 or number > maximum:
        raise ValueError(raw)
    return number
