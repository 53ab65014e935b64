"""Cloudflare Workers AI, as the core sees it (registry.py lists this SPEC)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciler.providers.cloudflare.env import ACCOUNT_ENV, TOKEN_ENV, URL_ENV, found_instead
from reconciler.providers.spec import ProviderSpec, SandboxSite, Setting, published_beside

if TYPE_CHECKING:
    from reconciler.providers.base import Provider

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


SPEC = ProviderSpec(
    name="cloudflare",
    title="Cloudflare Workers AI",
    connect=connect,
    items_at="reconciler.providers.cloudflare.items:ITEMS",
    token_variable=TOKEN_ENV,
    url_variable=URL_ENV,
    sandbox_env=sandbox_env,
    commands="reconciler.providers.cloudflare.commands",
    published=published_beside("reconciler.providers.cloudflare"),
)
