"""A fleet of self-hosted vLLM servers, as the core sees it (registry.py lists this SPEC)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.base.errors import CredentialsError
from reconciler.providers.spec import ProviderSpec, SandboxSite, Setting, published_beside
from reconciler.providers.vllm.env import API_KEY_ENV, SERVERS_ENV, STORE_ENV

if TYPE_CHECKING:
    from reconciler.providers.base import Provider

SANDBOX = "sandbox"  # the label --sandbox connects with: its servers and store, never the config's
SANDBOX_REPLICAS = 2  # what `reconciler sandbox` serves at /vllm/<i> by default


def connect(env: Mapping[str, str], label: str | None, setting: Setting) -> Provider:
    from reconciler.providers.vllm.api import Fleet, VllmProvider
    from reconciler.providers.vllm.fleet import servers

    values = {} if label == SANDBOX else setting.values
    store_value = env.get(STORE_ENV) if label == SANDBOX else values.get("store")
    if not store_value:
        raise CredentialsError(
            "no vLLM adapter store: set providers.vllm.store to a folder every server can read"
        )
    store = (setting.base / str(store_value)).absolute()
    fleet = Fleet(
        servers=servers(values.get("servers"), env),
        store=store,
        server_store=str(values.get("server_store") or store),
    )
    return VllmProvider(fleet, label or f"vllm store {store}", env.get(API_KEY_ENV) or None)


def sandbox_env(site: SandboxSite, env: Mapping[str, str]) -> dict[str, str]:
    store = site.state_dir / "vllm-store"
    store.mkdir(parents=True, exist_ok=True)
    servers = ",".join(f"{site.url}/vllm/{i}" for i in range(SANDBOX_REPLICAS))
    return {SERVERS_ENV: servers, STORE_ENV: str(Path(store).absolute()), API_KEY_ENV: ""}


SPEC = ProviderSpec(
    name="vllm",
    title="vLLM",
    connect=connect,
    items_at="reconciler.providers.vllm.items:ITEMS",
    token_variable=API_KEY_ENV,
    url_variable=SERVERS_ENV,
    sandbox_env=sandbox_env,
    published=published_beside("reconciler.providers.vllm"),
)
