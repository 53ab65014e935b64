"""The Workers AI model catalogue: what `GET /accounts/{id}/ai/models/search` serves, and what
the rest of the sandbox asks of it (does a model exist, does it take LoRA adapters, its task).

The bundled snapshot is catalogue.json beside this module. A file named by
RECONCILER_SANDBOX_CATALOGUE (or `reconciler sandbox --catalogue FILE`) extends or replaces it:

    {"mode": "extend", "models": [RECORD, ...]}     # or "replace"; a bare [RECORD, ...] extends

A RECORD is shaped like Cloudflare's: `name` is required, everything else has a default:
`id` (a uuid5 of the name), `source` (2 for `@hf/` names, else 1), `description` (""),
`task` (an object, or just its name; default "Text Generation"), `tags` ([]), `properties` (a
list of `{property_id, value}`, or an object `{"lora": "true", ...}` written for short; JSON
booleans become "true"/"false", as the real records spell them). In
"extend" mode a record whose name is already in the catalogue takes its place (so a test can
take `lora` away from a model, or give it a deprecation date); new names are appended.

A model takes LoRA adapters when its record has `{"property_id": "lora", "value": "true"}`,
as on the real API. A model whose `planned_deprecation_date` (an ISO date) has come is retired:
the search leaves it out unless `include_deprecated`, and then lists it for three months after
that date (SDK 5.x: "If true, include models for up to three months after their deprecation
date. Defaults to false"); create and run refuse it (api.py).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from reconciler.sandbox.common.bodies import BodyRefused, parse_json
from reconciler.sandbox.common.files import FileRefused, read_regular

ENV_VAR = "RECONCILER_SANDBOX_CATALOGUE"
# Sandbox choice: the bundled catalogue is 26 KB; a file 300 times that is no catalogue.
MAX_CATALOGUE_BYTES = 8 << 20
TEXT_GENERATION = "Text Generation"
# How long after its deprecation date `include_deprecated` still lists a model (SDK 5.x).
DEPRECATED_LISTED_MONTHS = 3

# `@<namespace>/<author>/<model>`: the shape of every Workers AI model name. No whitespace and
# no control character (C0, DEL, C1): a catalogue file cannot make the sandbox serve a name
# that carries NUL or an escape sequence, and a run's path cannot name one.
MODEL_NAME_RE = re.compile(r"@[a-z0-9-]+/[^/\s\x00-\x1f\x7f-\x9f]+/[^/\s\x00-\x1f\x7f-\x9f]+")
_NAMESPACE = uuid.UUID("3f0d4c1e-7a55-4b8e-9c0a-5e2b8d1f6a70")  # the bundled file's ids too


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; str() names the file and the problem."""


@dataclass(frozen=True)
class Model:
    record: dict[str, Any]  # exactly what the API serves

    @property
    def name(self) -> str:
        return str(self.record["name"])

    @property
    def description(self) -> str:
        return str(self.record["description"])

    @property
    def task(self) -> str:
        return str(self.record["task"]["name"])

    @property
    def source(self) -> int:
        return int(self.record["source"])

    @property
    def author(self) -> str:
        # Sandbox choice: no public source says what `author` matches; the records carry no
        # author field, so it is the name's second segment (`meta` in `@cf/meta/llama-3...`).
        return self.name.split("/")[1]

    def prop(self, property_id: str) -> Any:
        for item in self.record["properties"]:
            if item["property_id"] == property_id:
                return item["value"]
        return None

    @property
    def lora(self) -> bool:
        return _truthy(self.prop("lora"))

    @property
    def deprecation(self) -> date | None:
        """The planned deprecation date; None without one, or if it is not an ISO date (a
        record the sandbox cannot date is served, never retired)."""
        value = self.prop("planned_deprecation_date")
        try:
            return date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None

    def retired(self, today: date) -> bool:
        """Whether the model is deprecated by `today`. Sandbox choice: from its date on, the
        date itself included (the real run says "This model was deprecated on <date>", and
        reconciler's client calls a model deprecated on its date too)."""
        when = self.deprecation
        return when is not None and when <= today

    def listed(self, today: date, include_deprecated: bool) -> bool:
        """Whether the search lists it on `today`. Sandbox choice: "up to three months after"
        is up to the same day three calendar months on, that day included (the last day of a
        shorter month when it has no such day: 2026-11-30 is listed until 2027-02-28)."""
        when = self.deprecation
        if when is None or when > today:
            return True
        return include_deprecated and today <= months_after(when, DEPRECATED_LISTED_MONTHS)

    @property
    def experimental(self) -> bool:
        # Sandbox choice: `hide_experimental` is documented only as "Filter to hide
        # experimental models"; the records' only such marker is the `beta` property.
        return _truthy(self.prop("beta"))


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def months_after(day: date, months: int) -> date:
    """The same day `months` calendar months later, or the last day of that month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    last = (following - date.resolution).day
    return date(year, month, min(day.day, last))


class Catalogue:
    def __init__(self, models: Iterable[Model]) -> None:
        self.models: tuple[Model, ...] = tuple(models)
        self._by_name = {m.name: m for m in self.models}

    @classmethod
    def bundled(cls) -> Catalogue:
        text = (
            resources.files("reconciler.sandbox.cloudflare")
            .joinpath("catalogue.json")
            .read_text("utf-8")
        )
        return cls(_records(json.loads(text), "the bundled catalogue.json")[1])

    @classmethod
    def load(cls, extra: Path | None = None) -> Catalogue:
        """The bundled catalogue, extended or replaced by the file `extra` names."""
        base = cls.bundled()
        if extra is None:
            return base
        return base.merged(extra)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Catalogue:
        value = (os.environ if env is None else env).get(ENV_VAR, "").strip()
        return cls.load(Path(value) if value else None)

    def merged(self, path: Path) -> Catalogue:
        try:
            data = read_regular(Path(path), MAX_CATALOGUE_BYTES)
        except OSError as exc:
            raise CatalogueError(f"cannot read catalogue {path}: {exc.strerror or exc}") from None
        except FileRefused as exc:
            raise CatalogueError(f"cannot read catalogue {path}: {exc}") from None
        try:
            raw = parse_json(data)
        except BodyRefused as exc:
            raise CatalogueError(f"catalogue {path} is not valid JSON: {exc}") from None
        mode, models = _records(raw, f"catalogue {path}")
        if mode == "replace":
            return Catalogue(models)
        merged = dict(self._by_name)
        merged.update((m.name, m) for m in models)
        return Catalogue(merged.values())

    def get(self, name: str) -> Model | None:
        return self._by_name.get(name)

    def search(
        self,
        *,
        search: str | None = None,
        task: str | None = None,
        author: str | None = None,
        source: int | None = None,
        hide_experimental: bool = False,
        today: date | None = None,
        include_deprecated: bool = False,
    ) -> list[Model]:
        """The models that pass every filter given, in catalogue order; with `today`, those
        retired by then only with `include_deprecated`, for three months (Model.listed).

        Sandbox choices (no public source says how the real API matches): `search` is a
        case-insensitive substring of the name or the description; `task` is the task's name
        and `author` the name's second segment, both compared ignoring case (clients send
        "Text Generation" and "text generation" alike); `source` is the record's number.
        """
        needle = (search or "").strip().lower()
        found = []
        for model in self.models:
            if needle and needle not in model.name.lower() + "\n" + model.description.lower():
                continue
            if task and model.task.lower() != task.strip().lower():
                continue
            if author and model.author.lower() != author.strip().lower():
                continue
            if source is not None and model.source != source:
                continue
            if hide_experimental and model.experimental:
                continue
            if today is not None and not model.listed(today, include_deprecated):
                continue
            found.append(model)
        return found


def _records(raw: Any, where: str) -> tuple[str, list[Model]]:
    items: Any
    if isinstance(raw, list):
        mode, items = "extend", raw
    elif isinstance(raw, dict):
        mode = raw.get("mode", "extend")
        items = raw.get("models")
        if mode not in ("extend", "replace"):
            raise CatalogueError(f'{where}: \'mode\' must be "extend" or "replace"')
        if not isinstance(items, list):
            raise CatalogueError(f"{where}: 'models' must be a list of model records")
    else:
        raise CatalogueError(f'{where}: expected a list of model records or {{"models": [...]}}')
    models: list[Model] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        model = _model(item, f"{where}: models[{index}]")
        if model.name in seen:
            raise CatalogueError(f"{where}: {model.name} is listed twice")
        seen.add(model.name)
        models.append(model)
    return str(mode), models


def _model(item: Any, where: str) -> Model:
    if not isinstance(item, dict):
        raise CatalogueError(f"{where} must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name):
        raise CatalogueError(f"{where}: 'name' must be a model name like @cf/author/model")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise CatalogueError(f"{where}: 'description' must be a string")
    source = item.get("source", 2 if name.startswith("@hf/") else 1)
    if isinstance(source, bool) or not isinstance(source, int):
        raise CatalogueError(f"{where}: 'source' must be an integer")
    tags = item.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise CatalogueError(f"{where}: 'tags' must be a list of strings")
    record: dict[str, Any] = {
        "id": _text(item.get("id", str(uuid.uuid5(_NAMESPACE, "model:" + name))), where, "id"),
        "source": source,
        "name": name,
        "description": description,
        "task": _task(item.get("task", TEXT_GENERATION), where),
        "tags": list(tags),
        "properties": _properties(item.get("properties", []), where),
    }
    return Model(record)


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise CatalogueError(f"{where}: '{key}' must be a non-empty string")
    return value


def _task(value: Any, where: str) -> dict[str, str]:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise CatalogueError(f"{where}: 'task' must be a task name or {{id, name, description}}")
    name = _text(value.get("name"), where, "task.name")
    return {
        "id": _text(value.get("id", str(uuid.uuid5(_NAMESPACE, "task:" + name))), where, "task.id"),
        "name": name,
        "description": str(value.get("description", "")),
    }


def _properties(value: Any, where: str) -> list[dict[str, Any]]:
    pairs: Sequence[Any]
    if isinstance(value, dict):
        pairs = [{"property_id": k, "value": v} for k, v in value.items()]
    elif isinstance(value, list):
        pairs = value
    else:
        raise CatalogueError(f"{where}: 'properties' must be a list of {{property_id, value}}")
    properties = []
    for pair in pairs:
        if (
            not isinstance(pair, dict)
            or not isinstance(pair.get("property_id"), str)
            or "value" not in pair
        ):
            raise CatalogueError(f"{where}: each property must be {{property_id, value}}")
        value = pair["value"]
        if isinstance(value, bool):  # the real records spell flags as strings
            value = "true" if value else "false"
        properties.append({"property_id": pair["property_id"], "value": value})
    return properties
