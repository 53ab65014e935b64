"""Fireworks' base model catalogue as the plan reads it: which bases take LoRA addons.

Live, it is the models of accounts/fireworks/models (provider.read_catalogue), cached like
Cloudflare's by providers/catalogues.py. When it cannot be read, the bundled snapshot
(catalogue.json, beside this module: the bases the docs name, each with supportsLora and
supportsServerless) stands in. Either way, the bases the config declares LoRA-capable
(providers.fireworks.limits.lora_models) are laid on top: they win, as Cloudflare's declared
lora_models do, for a base Fireworks made LoRA-capable after the snapshot was taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from typing import Any

from reconciler.adapters.catalogue import SNAPSHOT, Catalogue, CatalogueModel
from reconciler.providers.spec import shipped_json

LIVE_NAME = "Fireworks' base model catalogue (accounts/fireworks/models)"
OVERRIDE = (
    "If Fireworks has made it LoRA-capable since, add it to "
    "providers.fireworks.limits.lora_models (a list of base models) in the config"
)
# said when the live catalogue could not be read: what lets reconciler read it
HINT = "an API key that can read accounts/fireworks/models lets reconciler read the live one"


@cache
def snapshot_data() -> Mapping[str, Any]:
    """catalogue.json as shipped in the package."""
    return shipped_json(__package__, "catalogue.json")


def snapshot_models() -> dict[str, CatalogueModel]:
    return {
        str(m["name"]): CatalogueModel(str(m["name"]), lora=m.get("supportsLora") is True)
        for m in snapshot_data()["models"]
    }


def snapshot(declared: Iterable[str]) -> tuple[Catalogue, str]:
    """The bundled snapshot with the declared bases on top, and the date it was taken."""
    date = str(snapshot_data().get("snapshot_date", "?"))
    bundled = Catalogue(snapshot_models(), SNAPSHOT)
    named = f"the bundled snapshot of Fireworks' base models ({date})"
    return shown(replace(bundled, named=named), declared), date


def shown(catalogue: Catalogue, declared: Iterable[str]) -> Catalogue:
    """The catalogue named as Fireworks', with the declared bases LoRA-capable in it."""
    models = dict(catalogue.models)
    for name in declared:
        models[name] = CatalogueModel(name, lora=True)
    return replace(
        catalogue,
        models=models,
        named=catalogue.named or LIVE_NAME,
        override=OVERRIDE,
    )
