"""Cohere fine-tuning (retired 2025-09-15: the sandbox only), as the core sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciler.providers.cohere.env import TOKEN_ENV, URL_ENV
from reconciler.providers.spec import ProviderSpec, SandboxSite, Setting

if TYPE_CHECKING:
    from reconciler.providers.base import Provider


def connect(env: Mapping[str, str], label: str | None, setting: Setting) -> Provider:
    from reconciler.providers.cohere.api import CohereProvider, endpoint_from_env

    return CohereProvider(endpoint_from_env(env, label))


def sandbox_env(site: SandboxSite, env: Mapping[str, str]) -> dict[str, str]:
    # Cohere's paths start at /v1: the sandbox serves them from its root
    return {TOKEN_ENV: site.token, URL_ENV: site.url}


SPEC = ProviderSpec(
    name="cohere",
    title="Cohere",
    connect=connect,
    items_at="reconciler.providers.cohere.items:ITEMS",
    token_variable=TOKEN_ENV,
    url_variable=URL_ENV,
    sandbox_env=sandbox_env,
    dataset_asset="dataset",  # items.DATASET: the one asset, the config's dataset
)
