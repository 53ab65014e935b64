"""An MkDocs hook: the config reference, generated from schemas/finetunes.schema.json at build time.

A page holding the marker line `<!-- finetunes-schema-reference -->` gets, in its place, one
table per object the schema declares (the top level, settings, each provider, each provider's
finetune, the adapter forms, checks): every key with its type, whether it is required, its
default and the schema's own description. Nothing is copied by hand, so the page cannot drift
from what `reconciler validate` enforces. `reference_markdown()` is importable for tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MARKER = "<!-- finetunes-schema-reference -->"
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "finetunes.schema.json"

Schema = dict[str, Any]


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs' page hook: replace the marker, leave every other page alone."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference_markdown())


def reference_markdown(schema: Schema | None = None) -> str:
    root = schema if schema is not None else json.loads(SCHEMA.read_text())
    defs: Schema = root.get("$defs", {})
    parts = [_table("The file", root, "", defs)]
    for name, ref in root["properties"]["providers"]["properties"].items():
        parts.append(_table(f"`providers.{name}`", _resolve(ref, defs), "", defs))
    for provider, target in _finetune_kinds(defs):
        title = f"`finetunes[]` with `provider: {provider}`"
        parts.append(_table(title, target, "", defs, provider))
    for name, short in SHARED.items():
        if name in defs:
            parts.append(_table(f"`{short}`", defs[name], "", defs))
    return "\n".join(p for p in parts if p)


# Definitions used by several finetune kinds: each gets its own table, and a key whose value
# is one of them names it by this short form
SHARED = {
    "hfAdapter": "adapter: {hf: ...}",
    "urlAdapter": "adapter: {files: ...}",
    "check": "checks[]",
}


def _finetune_kinds(defs: Schema) -> list[tuple[str, Schema]]:
    """Each provider's finetune: the `if provider == X then $ref` branches of `finetune`."""
    kinds = []
    for branch in defs.get("finetune", {}).get("allOf", []):
        provider = branch["if"]["properties"]["provider"]["const"]
        kinds.append((provider, _resolve(branch["then"], defs)))
    return kinds


def _resolve(node: Schema, defs: Schema) -> Schema:
    while isinstance(node, dict) and "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _table(title: str, node: Schema, prefix: str, defs: Schema, provider: str = "") -> str:
    node = _resolve(node, defs)
    rows = list(_rows(node, prefix, defs, provider))
    if not rows:
        return ""
    head = f"## {title}\n\n"
    if node.get("description"):
        head += _cell(node["description"]) + "\n\n"
    lines = ["| key | type | required | default | meaning |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return head + "\n".join(lines) + "\n"


def _rows(node: Schema, prefix: str, defs: Schema, provider: str = "") -> Any:
    """One row per property; an object whose properties are spelled inline is walked into."""
    required = set(node.get("required", []))
    for key, raw in node.get("properties", {}).items():
        if raw is True:  # declared by the shared `finetune` (name, provider)
            raw = defs.get("finetune", {}).get("properties", {}).get(key, {})
            if key == "provider" and provider:
                raw = {"const": provider}
        child = _resolve(raw, defs)
        path = f"{prefix}{key}"
        default = f"`{json.dumps(child['default'])}`" if "default" in child else ""
        yield [
            f"`{path}`",
            _type(raw, defs),
            "yes" if key in required else "",
            default,
            _cell(_description(raw, child)),
        ]
        for inner, suffix in _inline_objects(raw, defs):
            yield from _rows(inner, path + suffix, defs)


def _inline_objects(raw: Schema, defs: Schema) -> list[tuple[Schema, str]]:
    """The objects to walk into, and how their keys are spelled after the parent's: the
    properties of an object, of a list's items, of a map's values (`files.NAME.url`) or of
    each form a `oneOf` allows (`serve.deployment`); a shared definition has its own table
    instead, and a provider's block its own section."""
    if "$ref" in raw:
        name = raw["$ref"].rsplit("/", 1)[-1]
        if name in SHARED or name.endswith("Provider"):
            return []
        raw = defs[name]
    items, values = raw.get("items"), raw.get("additionalProperties")
    if isinstance(items, dict) and "$ref" not in items and "properties" in items:
        return [(items, "[].")]
    if isinstance(values, dict) and "$ref" not in values and "properties" in values:
        return [(values, ".NAME.")]
    if "properties" in raw:
        return [(raw, ".")]
    forms = [a for a in raw.get("oneOf", []) if "properties" in a and "$ref" not in a]
    return [(form, ".") for form in forms]


def _description(raw: Schema, child: Schema) -> str:
    text = raw.get("description") or child.get("description") or ""
    rules = [
        part["description"]
        for part in child.get("allOf", [])
        if isinstance(part, dict) and "description" in part
    ]
    if text and rules:
        return f"{text.rstrip('.')}; {'; '.join(rules)}."
    return text or "; ".join(rules)


def _type(raw: Schema, defs: Schema) -> str:
    if "$ref" in raw:
        name = raw["$ref"].rsplit("/", 1)[-1]
        if name in SHARED:
            return f"`{SHARED[name].split(': ', 1)[-1]}` (below)"
        return _type(defs[name], defs)
    if "const" in raw:
        return f"`{json.dumps(raw['const'])}`"
    if "enum" in raw:
        return " or ".join(f"`{json.dumps(v)}`" for v in raw["enum"])
    alternatives = raw.get("oneOf", [])
    if alternatives and all(set(a) & {"type", "const", "enum", "$ref"} for a in alternatives):
        return " or ".join(_type(alt, defs) for alt in alternatives)
    if raw.get("type") == "object" and "properties" in raw and "$ref" not in raw:
        return "`{" + ", ".join(raw["properties"]) + "}`"
    kind = raw.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(raw.get("items"), dict):
        text = f"list of {_type(raw['items'], defs)}"
    return text + _bounds(raw)


def _bounds(raw: Schema) -> str:
    found = []
    for key, word in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">")):
        if key in raw:
            found.append(f"{word} {raw[key]}")
    if "maxLength" in raw:
        found.append(f"at most {raw['maxLength']} characters")
    if "pattern" in raw:
        found.append(f"matching `{raw['pattern']}`")
    return f" ({', '.join(found)})" if found else ""


def _cell(text: str) -> str:
    """Table-safe: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")
