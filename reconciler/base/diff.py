"""Field-level differences between two records: the one place deepdiff is used."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldChange:
    field: str  # dotted path, e.g. "description" or "settings.hyperparameters.train_epochs"
    before: Any
    after: Any


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """What differs from `before` to `after`, sorted by field, with both values."""
    if not before or not after:  # deepdiff reports a whole-record change at the root
        keys = sorted(set(before) | set(after))
        return tuple(FieldChange(k, before.get(k), after.get(k)) for k in keys)
    if _identical(dict(before), dict(after)):
        return ()  # the common case (nothing changed) without deepdiff: ~0.3 ms a finetune
    from deepdiff import DeepDiff  # ~100 ms to import; only a real change pays for it

    diff = DeepDiff(dict(before), dict(after), ignore_order=True, verbose_level=2)
    changes: dict[str, FieldChange] = {}
    for kind in ("values_changed", "type_changes"):
        for path, values in diff.get(kind, {}).items():
            name = _dotted(path)
            changes[name] = FieldChange(name, values.get("old_value"), values.get("new_value"))
    for path, value in diff.get("dictionary_item_added", {}).items():
        name = _dotted(path)
        changes[name] = FieldChange(name, None, value)
    for path, value in diff.get("dictionary_item_removed", {}).items():
        name = _dotted(path)
        changes[name] = FieldChange(name, value, None)
    for kind in ("iterable_item_added", "iterable_item_removed"):
        for path in diff.get(kind, {}):
            name = _dotted(path.rsplit("[", 1)[0])
            changes[name] = FieldChange(name, _get(before, name), _get(after, name))
    return tuple(changes[k] for k in sorted(changes))


def _identical(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down, so deepdiff would find nothing either
    (plain == calls 1, 1.0 and True equal, where deepdiff reports a type change)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(_identical, a, b))
    return bool(a == b)


def _dotted(path: str) -> str:
    # deepdiff paths look like root['settings']['name'] or root['tags'][2]
    parts = path.removeprefix("root").strip("[]").split("][")
    return ".".join(p.strip("'\"") for p in parts if p)


def _get(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def project(actual: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """`actual` cut down to the keys `declared` has, at every depth: what the user did not
    declare (a remote default, a server-added key) is not compared."""
    out: dict[str, Any] = {}
    for key, want in declared.items():
        have = actual.get(key)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            out[key] = project(have, want)
        else:
            out[key] = have
    return out
