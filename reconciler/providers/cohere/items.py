"""A Cohere finetune in the config: trained from a dataset file; its base model and
hyperparameters are the fields a plan compares (only those declared: Cohere fills in
defaults). Cohere's key is scoped to one organisation: one account."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.base.model import AssetFile, DesiredFinetune
from reconciler.config.items import SINGLE_ACCOUNT, AccountRule, ItemContext, contained

if TYPE_CHECKING:
    from reconciler.adapters.preflight import Limits
    from reconciler.config.yamlsource import Path_

DATASET = "dataset"  # the one asset: the config's dataset, and its name in the lockfile


class CohereItems:
    account: AccountRule | None = None

    def limits(self, settings: Mapping[str, Any]) -> Limits | None:
        return None  # Cohere publishes no adapter limits: it trains the model itself

    def build(self, context: ItemContext) -> DesiredFinetune:
        item = context.item
        base_model = item["base_model"]
        model = base_model["base_type"] + (
            f"/{base_model['name']}" if base_model.get("name") else ""
        )
        return DesiredFinetune(
            name=context.name,
            provider=item["provider"],
            account=SINGLE_ACCOUNT,
            model=model,
            description=None,
            public=False,
            assets=_dataset(context),
            mark=context.mark,
            fields={
                "base_model": dict(base_model),
                "hyperparameters": dict(item.get("hyperparameters") or {}),
            },
            prevent_destroy=bool(item.get("prevent_destroy", False)),
            previous_name=item.get("previous_name"),
            versioning=context.versioning(),
            keep=item.get("keep"),
        )


def _dataset(context: ItemContext) -> tuple[AssetFile, ...]:
    dataset = context.item["dataset"]
    key: Path_ = (*context.where, "dataset", "path")
    label = f"finetune '{context.name}': dataset {dataset['path']}"
    path = context.base / dataset["path"]
    if not contained(context, key, label, path):
        return ()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        context.problem(key, f"{label} {what}")
        return ()
    try:
        with path.open("rb") as f:
            empty = not f.read(1)
    except OSError as exc:
        context.problem(key, f"{label} cannot be read ({exc.strerror})")
        return ()
    if empty:
        context.problem(key, f"{label} is empty")
        return ()
    return (AssetFile(name=DATASET, path=path, kind=dataset["type"]),)


ITEMS = CohereItems()
