"""Cloudflare Workers AI, as the core sees it (registry.py lists this SPEC)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciler.providers.base import Provider
from reconciler.providers.cloudflare.env import ACCOUNT_ENV, TOKEN_ENV, URL_ENV, found_instead
from reconciler.providers.cloudflare.items import CloudflareItems, published
from reconciler.providers.spec import ProviderSpec, SandboxSite, Setting

if TYPE_CHECKING:
    from reconciler.base.model import DesiredFinetune
    from reconciler.config.items import ItemContext

SANDBOX_PREFIX = "/client/v4"  # the sandbox mounts Cloudflare's API where the real one is


def connect(env: Mapping[str, str], label: str | None, setting: Setting) -> Provider:
    from reconciler.base.errors import CredentialsError
    from reconciler.providers.cloudflare.api import CloudflareProvider, endpoint_from_env

    instead = found_instead(env)
    if instead is not None:
        raise CredentialsError(instead)
    return CloudflareProvider(endpoint_from_env(env, label))


def sandbox_env(site: SandboxSite, env: Mapping[str, str]) -> dict[str, str]:
    return {
        TOKEN_ENV: site.token,
        URL_ENV: site.url + SANDBOX_PREFIX,
        ACCOUNT_ENV: env.get(ACCOUNT_ENV) or site.account,
    }


class _Items(CloudflareItems):
    """Cloudflare's items, and what the config asks of it that it cannot do, said at the line
    that asks it (validate included), not first at plan."""

    def build(self, context: ItemContext) -> DesiredFinetune:
        desired = super().build(context)
        if desired.keep is not None:
            # an error, not a warning: every plan of it is blocked, so validate says so first
            context.problem(
                (*context.where, "keep"),
                f"finetune '{desired.name}': keep: {desired.keep} asks to delete old versions, "
                "but cloudflare cannot delete a finetune: remove keep "
                "(old versions are retired: counted, never reported as unmanaged)",
            )
        return desired


SPEC = ProviderSpec(
    name="cloudflare",
    title="Cloudflare Workers AI",
    connect=connect,
    items=_Items(),
    token_variable=TOKEN_ENV,
    url_variable=URL_ENV,
    sandbox_env=sandbox_env,
    commands="reconciler.providers.cloudflare.commands",
    published=published,
)
