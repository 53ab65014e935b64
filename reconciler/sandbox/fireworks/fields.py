"""Reading request bodies as grpc-gateway does: proto-JSON with known fields only.

protojson accepts a field by its JSON name (`displayName`) or its proto name (`display_name`),
refuses a field the message does not have ("unknown field"), reads 64-bit integers from
numbers or decimal strings, and ignores nothing silently. Output-only fields (`state`,
`createTime`, ...) are accepted and dropped, as the API never takes them from a caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from reconciler.sandbox.common.bodies import parse_json
from reconciler.sandbox.fireworks.errors import invalid

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

MAX_JSON_BYTES = 1 << 20  # sandbox choice: no published request size limit
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Kind:
    name: str  # "string", "bool", "int", "enum", "strings", "map", "any", "output"
    values: tuple[str, ...] = ()  # for enums
    maximum: int = INT32_MAX  # for ints


STRING = Kind("string")
BOOL = Kind("bool")
INT32 = Kind("int")
INT64 = Kind("int", maximum=INT64_MAX)
STRINGS = Kind("strings")
STRING_MAP = Kind("map")  # map<string, string>; int64 values may come as numbers
ANY = Kind("any")  # echoed as given (fields the sandbox stores but does not act on)
OUTPUT = Kind("output")  # output only: accepted and dropped


def enum(*values: str) -> Kind:
    return Kind("enum", values)


Spec = Mapping[str, Union[Kind, "Mapping[str, Any]"]]


def camel(name: str) -> str:
    """`display_name` -> `displayName`; a JSON name is unchanged."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def read_json(environ: WSGIEnvironment) -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty message, as in grpc-gateway."""
    from werkzeug.wsgi import get_input_stream

    raw = get_input_stream(environ, max_content_length=None).read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise invalid(f"request body is larger than {MAX_JSON_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        value = parse_json(raw)  # bounded depth; NaN and lone surrogates refused
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise invalid("request body must be a JSON object")
    return value


def parse(value: object, spec: Spec, where: str) -> dict[str, Any]:
    """`value` (a JSON object) read against `spec`: keys in JSON form, output-only fields
    dropped, nulls left out (proto-JSON's null is "not set"). FireworksError otherwise."""
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a JSON object")
    parsed: dict[str, Any] = {}
    for key, item in value.items():
        name = camel(str(key))
        kind = spec.get(name)
        if kind is None:
            raise invalid(f"{where}: unknown field {key!r}")
        if name in parsed:
            raise invalid(f"{where}: field {name!r} is set twice")
        if item is None or kind == OUTPUT:
            continue
        label = f"{where}.{name}"
        parsed[name] = (
            parse(item, kind, label) if isinstance(kind, Mapping) else _read(item, kind, label)
        )
    return parsed


def _read(item: object, kind: Kind, label: str) -> Any:
    if kind.name == "string":
        return _expect(item, isinstance(item, str), "a string", label)
    if kind.name == "bool":
        return _expect(item, isinstance(item, bool), "true or false", label)
    if kind.name == "int":
        return integer(item, label, kind.maximum)
    if kind.name == "enum":
        return _expect(item, item in kind.values, f"one of {', '.join(kind.values)}", label)
    if kind.name == "strings":
        ok = isinstance(item, list) and all(isinstance(s, str) for s in item)
        return _expect(item, ok, "a list of strings", label)
    if kind.name == "map":
        if not isinstance(item, dict):
            raise invalid(f"{label} must be a JSON object")
        return {str(k): str(integer(v, f"{label}[{k!r}]", INT64_MAX)) for k, v in item.items()}
    return item  # ANY


def _expect(item: object, ok: bool, what: str, label: str) -> Any:
    if not ok:
        raise invalid(f"{label} must be {what}, got {json.dumps(item)[:80]}")
    return item


_INT_TEXT = re.compile(r"-?\d+")


def integer(item: object, label: str, maximum: int = INT64_MAX) -> int:
    """A proto-JSON integer: a whole number, or its decimal string (how int64 travels)."""
    number: int | None = None
    if isinstance(item, int) and not isinstance(item, bool):
        number = item
    elif isinstance(item, float) and item.is_integer():
        number = int(item)
    elif isinstance(item, str) and _INT_TEXT.fullmatch(item.strip()):
        number = int(item.strip())
    if number is None or not -maximum - 1 <= number <= maximum:
        raise invalid(f"{label} must be an integer, got {json.dumps(item)[:80]}")
    return number


def flag(query: Mapping[str, str], key: str) -> bool:
    """A boolean query parameter as grpc-gateway reads it (true/false, 1/0)."""
    raw = query.get(key)
    if raw is None or raw == "":
        return False
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "t"):
        return True
    if lowered in ("false", "0", "f"):
        return False
    raise invalid(f"query parameter {key}: invalid boolean {raw!r}")
