"""The JSON Schemas shipped with the package, and schema errors turned into readable problems."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from reconciler.base.errors import Problem
from reconciler.base.suggest import did_you_mean
from reconciler.config.yamlsource import Path_, Source


@cache
def load(name: str) -> dict[str, Any]:
    """A schema by file name, e.g. 'finetunes.schema.json' (schemas/ is the one source of truth)."""
    text = (resources.files("reconciler") / "schemas" / name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def token(name: str, *parts: str) -> str:
    """A digest of a schema and of what it was checked against: the stat cache keeps it for a
    document found valid, so an unchanged document is not checked again."""
    h = hashlib.sha256((resources.files("reconciler") / "schemas" / name).read_bytes())
    for part in parts:
        h.update(b"\0" + part.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name))


def display_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def problems(source: Source, skip: set[Path_] | None = None) -> list[Problem]:
    """Every schema violation in the source, each placed at its line and column."""
    skip = skip or set()
    found: list[Problem] = []
    for error in validator("finetunes.schema.json").iter_errors(source.data):
        path = tuple(error.absolute_path)
        if path in skip:
            continue  # already reported (e.g. an unset ${ENV}); one message per cause
        found.extend(_explain(source, path, error))
    found.sort(key=lambda p: (p.line or 0, p.column or 0, p.message))
    return found


def _explain(source: Source, path: Path_, error: ValidationError) -> list[Problem]:
    where = display_path(path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("description")
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed]
        return [
            source.problem(
                (*path, k),
                f"{display_path((*path, k))}: unknown key '{k}'{did_you_mean(k, allowed)}; "
                "expected one of: " + ", ".join(allowed),
                key=True,
            )
            for k in extras
        ]
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        return [source.problem(path, f"{where}: missing required key '{missing}'")]
    if kind == "enum":
        options = ", ".join(repr(o) for o in schema.get("enum", []))
        return [source.problem(path, f"{where}: {error.instance!r} is not one of: {options}")]
    if kind == "const":
        return [
            source.problem(
                path, f"{where}: expected {error.validator_value!r}, got {error.instance!r}"
            )
        ]
    if kind == "type":
        return [
            source.problem(
                path,
                f"{where}: expected {_a(error.validator_value)}, got {_json_type(error.instance)}",
            )
        ]
    if kind in ("maxLength", "minLength") and isinstance(error.instance, str):
        bound = "at most" if kind == "maxLength" else "at least"
        size, limit = len(error.instance), error.validator_value
        return [source.problem(path, f"{where}: {size} characters, {bound} {limit} allowed")]
    if kind == "pattern":
        text = f"{where}: {error.instance!r} does not match {error.validator_value}"
        return [source.problem(path, text + (f" ({hint})" if hint else ""))]
    if kind == "not":
        text = f"{where}: {error.instance!r} is not allowed"
        return [source.problem(path, text + (f": {hint}" if hint else ""))]
    if kind == "oneOf" and hint:
        return [source.problem(path, f"{where}: {hint}")]
    return [source.problem(path, f"{where}: {error.message}")]


# JSON Schema's words, said the way a YAML file is read
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "a boolean (true or false)",
    "integer": "a whole number",
    "number": "a number",
    "null": "nothing (null)",
}


def _a(kind: object) -> str:
    names = kind if isinstance(kind, list) else [kind]
    return " or ".join(_TYPE_WORDS.get(str(n), str(n)) for n in names)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
