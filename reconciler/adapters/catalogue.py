"""A provider's model catalogue as data: which base models take LoRA adapters, and until when.

Cloudflare serves it (`GET /accounts/{id}/ai/models/search`: each model's `lora` and
`planned_deprecation_date` properties). The provider module reads it, catalogues.py caches it,
and the checks here only look at what they are handed: no network, no clock (today's date is
an argument), so the plan that uses them stays pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LIVE, CACHED, SNAPSHOT = "live", "cached", "snapshot"


@dataclass(frozen=True)
class CatalogueModel:
    name: str
    lora: bool  # the catalogue's `lora` property is "true"
    deprecation: str | None = None  # planned_deprecation_date, an ISO date
    task: str | None = None


@dataclass(frozen=True)
class Catalogue:
    """The models one account can use, and where that knowledge came from."""

    models: Mapping[str, CatalogueModel]
    source: str  # LIVE (read in this run), CACHED (read earlier, still fresh) or SNAPSHOT
    read_at: str | None = None  # when it was read from the provider (ISO 8601, UTC)
    # where the provider says (providers/catalogues.OwnsCatalogue): how messages name this
    # catalogue, and how the config declares a base LoRA-capable; Cloudflare's otherwise
    named: str | None = None
    override: str | None = None

    @property
    def label(self) -> str:
        if self.named:
            return self.named
        if self.source == SNAPSHOT:
            return "the bundled snapshot of LoRA-capable models"
        return "the account's model catalogue (GET .../ai/models/search)"


def parse_models(items: Iterable[Any]) -> dict[str, CatalogueModel]:
    """The API's model records -> CatalogueModel by name. Records without a name are skipped:
    nothing could refer to them."""
    found: dict[str, CatalogueModel] = {}
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        props = _properties(item.get("properties"))
        task = item.get("task")
        found[item["name"]] = CatalogueModel(
            name=item["name"],
            lora=_truthy(props.get("lora")),
            deprecation=_date(props.get("planned_deprecation_date")),
            task=task.get("name") if isinstance(task, Mapping) else None,
        )
    return found


def _properties(value: Any) -> dict[str, Any]:
    if not isinstance(value, list):
        return {}
    return {
        p["property_id"]: p.get("value")
        for p in value
        if isinstance(p, Mapping) and isinstance(p.get("property_id"), str)
    }


def _truthy(value: Any) -> bool:
    # the catalogue writes booleans as strings ("true"); be ready for a real boolean too
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _date(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    return value[:10]  # "2026-05-30" or "2026-05-30T00:00:00Z": the day is what matters


def from_snapshot(lora_models: Iterable[str], deprecations: Mapping[str, str]) -> Catalogue:
    """The bundled snapshot in the catalogue's shape: the fallback when none can be read."""
    return Catalogue(
        models={
            m: CatalogueModel(m, lora=True, deprecation=deprecations.get(m))
            for m in sorted(lora_models)
        },
        source=SNAPSHOT,
    )


def to_records(models: Mapping[str, CatalogueModel]) -> list[dict[str, Any]]:
    """What the cache keeps: the few facts used, not the whole records."""
    return [
        {"name": m.name, "lora": m.lora, "deprecation": m.deprecation, "task": m.task}
        for m in sorted(models.values(), key=lambda m: m.name)
    ]


def from_records(records: Any) -> dict[str, CatalogueModel] | None:
    """The cache's records back; None when they are not what to_records wrote."""
    if not isinstance(records, list):
        return None
    found: dict[str, CatalogueModel] = {}
    for r in records:
        if not isinstance(r, dict) or not isinstance(r.get("name"), str):
            return None
        found[r["name"]] = CatalogueModel(
            name=r["name"],
            lora=r.get("lora") is True,
            deprecation=r.get("deprecation") if isinstance(r.get("deprecation"), str) else None,
            task=r.get("task") if isinstance(r.get("task"), str) else None,
        )
    return found


# --- the checks: pure ---


def base_problem(
    model: str,
    catalogue: Catalogue,
    declared: frozenset[str],
    quantized_hint: str,
    provider: str = "<provider>",
) -> str | None:
    """Why `model` cannot take an adapter, per the catalogue; None when it can. A model the
    config itself declares LoRA-capable (limits.lora_models) is taken at its word."""
    if model in declared:
        return None
    entry = catalogue.models.get(model)
    if entry is not None and entry.lora:
        return None
    capable = sorted(m for m, e in catalogue.models.items() if e.lora)
    override = catalogue.override or (
        "If the provider has made it LoRA-capable since, add it under "
        f"providers.{provider}.limits.lora_models (model: model_type) in the config"
    )
    if entry is None:
        near = difflib.get_close_matches(model, list(catalogue.models), n=1, cutoff=0.8)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return (
            f"model {model} is not in {catalogue.label}{hint}; the LoRA-capable models there "
            f"are {', '.join(capable) or 'none'}. {override}"
        )
    return (
        f"model {model} does not take LoRA adapters: {catalogue.label} does not mark it "
        f"lora{quantized_hint}; the LoRA-capable models there are {', '.join(capable)}. "
        f"{override}"
    )


def deprecation_note(
    model: str,
    catalogue: Catalogue,
    today: str | None,
    snapshot: Mapping[str, str] | None = None,
    title: str = "the provider",
) -> str | None:
    """A warning for a base model with a planned deprecation date; None without one. A model
    the catalogue no longer lists (the search leaves a model out some months after its date)
    falls back to the date the bundled snapshot knows, then to saying it is gone."""
    entry = catalogue.models.get(model)
    date = entry.deprecation if entry is not None else None
    where = f"planned_deprecation_date in {catalogue.label}"
    if entry is None and catalogue.source != SNAPSHOT:
        date = (snapshot or {}).get(model)
        where = "the bundled snapshot's planned_deprecation_date"
        if date is None:
            return (
                f"base model {model} is no longer in {catalogue.label}: it may have been "
                "deprecated and retired, and requests to it may fail; move the adapter to "
                "another LoRA-capable base"
            )
    if date is None:
        return None
    if today is not None and date <= today:
        return (
            f"base model {model} is deprecated since {date} ({where}): move the adapter to "
            f"another LoRA-capable base before {title} stops serving it"
        )
    return (
        f"base model {model} will be deprecated on {date} ({where}): plan a move to another "
        "LoRA-capable base"
    )
