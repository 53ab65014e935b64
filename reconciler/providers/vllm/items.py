"""A vLLM finetune in the config: an adapter (a folder, a Hub repo or URLs) for the base model
the fleet serves. It is always versioned by content: new weights are loaded under a new name,
never under a loaded one (a server's prefix cache would answer with the old weights), and the
superseded name is unloaded once the new one is current (keep: 1 unless the config says)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.base.model import DesiredFinetune
from reconciler.config.items import (
    SINGLE_ACCOUNT,
    AccountRule,
    ItemContext,
    adapter_assets,
    adapter_checks,
    check_patterns,
)
from reconciler.providers.spec import shipped_json

if TYPE_CHECKING:
    from reconciler.adapters.preflight import Limits

EVERY = "every server"  # the `loaded` field a finetune wants: api.py reads it back
DEFAULT_MAX_LORA_RANK = 16  # vLLM's --max-lora-rank default


@cache
def published() -> Mapping[str, Any]:
    """What an adapter for a vLLM fleet is checked against (limits.json)."""
    return shipped_json(__package__)


class VllmItems:
    account: AccountRule | None = None  # a fleet is one account: its servers are its endpoints

    def limits(self, settings: Mapping[str, Any]) -> Limits:
        rank = settings.get("max_lora_rank", DEFAULT_MAX_LORA_RANK)
        from reconciler.adapters.preflight import Limits

        return Limits.from_data(published(), {"max_lora_rank": rank})

    def build(self, context: ItemContext) -> DesiredFinetune:
        item = context.item
        folder, assets = adapter_assets(context, tuple(published()["required_files"]))
        desired = DesiredFinetune(
            name=context.name,
            provider=item["provider"],
            account=SINGLE_ACCOUNT,
            model=item["model"],
            description=None,
            public=False,
            assets=assets,
            mark=context.mark,
            fields={"model": item["model"], "loaded": EVERY},
            checks=tuple(item.get("checks") or ()),
            versioning="content",
            keep=item.get("keep", 1),
        )
        check_patterns(context)
        adapter_checks(context, desired, folder)
        return desired


ITEMS = VllmItems()
