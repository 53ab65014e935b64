"""List calls: pageSize, pageToken, filter, orderBy and readMask, over resources as JSON views.

- `pageSize`: default 50, at most 200 ("values above 200 will be coerced to 200"); negative or
  not an integer is INVALID_ARGUMENT.
- `pageToken`: opaque and signed (the key lives in the state file). It holds the sort key of
  the last item served (keyset paging: an item created or deleted between two pages neither
  repeats nor skips another) and a digest of the call's other parameters. "All other
  parameters must match the call that provided the page token": filter, orderBy and readMask
  must, or it is INVALID_ARGUMENT. pageSize may change between pages (AIP-158 allows it).
- `filter` (AIP-160), the subset the sandbox evaluates: comparisons `field = value` and
  `field != value` joined by `AND`. A field is a (dotted) path in the resource's JSON, in
  JSON or proto spelling (`displayName`, `display_name`, `peftDetails.baseModel`); a value is
  a quoted string or a bare word (`HF_PEFT_ADDON`, `true`, `16`). A field a resource does not
  have, `OR`, `NOT`, `-`, parentheses, `:` (has), `<`, `>`, wildcards and functions are
  refused with INVALID_ARGUMENT naming what the sandbox supports.
- `orderBy`: "foo desc,bar", default "name"; ties are broken by name.
- `readMask`: comma-separated top-level fields; empty or `*` is every field.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.fireworks.errors import invalid
from reconciler.sandbox.fireworks.fields import camel

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
SUPPORTED_FILTERS = (
    'comparisons `field = value` or `field != value` joined by AND, e.g. kind="HF_PEFT_ADDON"'
    " AND state=READY"
)

_TERM_RE = re.compile(
    r"\s*(?P<field>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*(?P<op>!=|=)\s*"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|[A-Za-z0-9_./#@+-]+)\s*"
)
_AND_RE = re.compile(r"\s+AND\s+")


@dataclass(frozen=True)
class Term:
    path: tuple[str, ...]
    equal: bool
    value: str


@dataclass(frozen=True)
class ListQuery:
    page_size: int
    page_token: str
    terms: tuple[Term, ...]
    order: tuple[tuple[tuple[str, ...], bool], ...]  # (path, descending)
    mask: tuple[str, ...] | None  # None: every field
    scope: str  # what a page token must have been issued for


def parse_query(query: Mapping[str, str], kind: str, fields: frozenset[str]) -> ListQuery:
    """The list parameters, checked against the resource's top-level `fields`."""
    filter_text = query.get("filter", "")
    order_text = query.get("orderBy", query.get("order_by", ""))
    mask_text = query.get("readMask", query.get("read_mask", ""))
    scope = json.dumps([kind, filter_text, order_text, mask_text])
    return ListQuery(
        page_size=page_size(query.get("pageSize", query.get("page_size"))),
        page_token=query.get("pageToken", query.get("page_token", "")),
        terms=parse_filter(filter_text, fields),
        order=parse_order(order_text, fields),
        mask=parse_mask(mask_text, fields),
        scope=hashlib.sha256(scope.encode()).hexdigest()[:16],
    )


def page_size(raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return DEFAULT_PAGE_SIZE
    if not re.fullmatch(r"-?\d+", raw.strip()):
        raise invalid(f"invalid pageSize {raw!r}: must be an integer")
    size = int(raw)
    if size < 0:
        raise invalid(f"invalid pageSize {size}: must not be negative")
    return DEFAULT_PAGE_SIZE if size == 0 else min(size, MAX_PAGE_SIZE)


def _path(text: str, fields: frozenset[str], what: str) -> tuple[str, ...]:
    path = tuple(camel(part) for part in text.split("."))
    if path[0] not in fields:
        raise invalid(f"{what}: unknown field {text!r}; fields are {', '.join(sorted(fields))}")
    return path


def parse_filter(text: str, fields: frozenset[str]) -> tuple[Term, ...]:
    if not text.strip():
        return ()
    terms = []
    for part in _AND_RE.split(text.strip()):
        match = _TERM_RE.fullmatch(part)
        if match is None:
            raise invalid(
                f"filter {text!r} is not supported by the sandbox: it takes {SUPPORTED_FILTERS}"
            )
        value = match.group("value")
        if value.startswith('"'):
            value = json.loads(value)
        if "*" in value:
            raise invalid(f"filter {text!r}: the sandbox does not match wildcards")
        path = _path(match.group("field"), fields, "filter")
        terms.append(Term(path, match.group("op") == "=", value))
    return tuple(terms)


def parse_order(text: str, fields: frozenset[str]) -> tuple[tuple[tuple[str, ...], bool], ...]:
    order = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        words = item.split()
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise invalid(f'invalid orderBy {text!r}: use "field", "field desc", comma-separated')
        descending = len(words) == 2 and words[1].lower() == "desc"
        order.append((_path(words[0], fields, "orderBy"), descending))
    return (*order, (("name",), False))


def parse_mask(text: str, fields: frozenset[str]) -> tuple[str, ...] | None:
    if text.strip() in ("", "*"):
        return None
    return tuple(_path(p.strip(), fields, "readMask")[0] for p in text.split(",") if p.strip())


def masked(view: dict[str, Any], mask: tuple[str, ...] | None) -> dict[str, Any]:
    return view if mask is None else {k: v for k, v in view.items() if k in mask}


def lookup(view: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = view
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _text(value: Any) -> str:
    """How a field's value reads in a filter: proto defaults for unset fields."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def matches(view: Mapping[str, Any], terms: Sequence[Term]) -> bool:
    return all((_text(lookup(view, t.path)) == t.value) == t.equal for t in terms)


def _sort_value(value: Any) -> tuple[int, Any]:
    """Values of one field compare within their kind: unset first, then numbers, then text
    (RFC 3339 times in one format sort as text)."""
    if value is None:
        return (0, 0)
    if isinstance(value, (bool, int, float)):
        return (1, float(value))
    return (2, str(value))


def sort_key(view: Mapping[str, Any], query: ListQuery) -> list[Any]:
    """The values a view sorts by, as plain JSON scalars (they travel in page tokens)."""
    values = (lookup(view, path) for path, _ in query.order)
    return [json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for v in values]


def _compare(a: Sequence[Any], b: Sequence[Any], query: ListQuery) -> int:
    for x, y, (_, descending) in zip(a, b, query.order, strict=True):
        kx, ky = _sort_value(x), _sort_value(y)
        if kx != ky:
            result = -1 if kx < ky else 1
            return -result if descending else result
    return 0


class Pages:
    """Signed keyset page tokens (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: bytes) -> str:
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def _encode(self, scope: str, key: list[Any]) -> str:
        payload = json.dumps([scope, key], separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(payload)}"

    def _decode(self, scope: str, token: str) -> list[Any]:
        body, _, signature = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            payload = b""
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid(f"invalid pageToken {token[:40]!r}")
        found_scope, key = json.loads(payload)
        if found_scope != scope:
            raise invalid(
                "pageToken does not match this request: filter, orderBy and readMask must be"
                " those of the call that returned it"
            )
        return list(key)

    def page(
        self, views: Sequence[dict[str, Any]], query: ListQuery
    ) -> tuple[list[dict[str, Any]], str, int]:
        """(the page's views, nextPageToken or "", totalSize) of the views that match."""
        chosen = [v for v in views if matches(v, query.terms)]

        def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
            return _compare(sort_key(a, query), sort_key(b, query), query)

        chosen.sort(key=functools.cmp_to_key(compare))
        rest = chosen
        if query.page_token:
            after = self._decode(query.scope, query.page_token)
            rest = [v for v in chosen if _compare(sort_key(v, query), after, query) > 0]
        served = rest[: query.page_size]
        more = len(rest) > len(served)
        token = self._encode(query.scope, sort_key(served[-1], query)) if more else ""
        return [masked(v, query.mask) for v in served], token, len(chosen)
