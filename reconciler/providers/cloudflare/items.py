"""A Cloudflare finetune in the config: an adapter folder (or Hub repo, or URLs) for a base
model in one account; the fields a plan compares are model, description and public."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.base.model import DesiredFinetune
from reconciler.config.items import (
    AccountRule,
    ItemContext,
    account_id,
    adapter_assets,
    adapter_checks,
    check_patterns,
)
from reconciler.providers.cloudflare.env import ACCOUNT_ENV
from reconciler.providers.spec import shipped_json

ACCOUNT = AccountRule(
    variable=ACCOUNT_ENV,
    pattern=r"[0-9a-fA-F]{32}",
    shape="a 32-hex-character account id",
    stand_in="0" * 32,
    lower=True,
)

if TYPE_CHECKING:
    from reconciler.adapters.preflight import Limits


@cache
def published() -> Mapping[str, Any]:
    """Cloudflare's published limits and LoRA models, a dated snapshot (limits.json)."""
    return shipped_json(__package__)


class CloudflareItems:
    account = ACCOUNT

    def limits(self, settings: Mapping[str, Any]) -> Limits:
        from reconciler.adapters.preflight import Limits

        return Limits.from_data(published(), settings.get("limits"))

    def build(self, context: ItemContext) -> DesiredFinetune:
        item = context.item
        account = account_id(context, ACCOUNT)
        required = tuple(published()["required_files"])
        folder, assets = adapter_assets(context, required)
        description = item.get("description") or None
        public = bool(item.get("public", False))
        desired = DesiredFinetune(
            name=context.name,
            provider=item["provider"],
            account=account,
            model=item["model"],
            description=description,
            public=public,
            assets=assets,
            mark=context.mark,
            fields={"model": item["model"], "description": description, "public": public},
            checks=tuple(item.get("checks") or ()),
            versioning=context.versioning(),
            keep=item.get("keep"),
        )
        check_patterns(context)
        adapter_checks(context, desired, folder)
        if desired.keep is not None:
            # an error at its line, not a warning: every plan of it is blocked, so validate
            # says so first
            context.problem(
                (*context.where, "keep"),
                f"finetune '{desired.name}': keep: {desired.keep} asks to delete old versions, "
                "but cloudflare cannot delete a finetune: remove keep "
                "(old versions are retired: counted, never reported as unmanaged)",
            )
        return desired


ITEMS = CloudflareItems()
