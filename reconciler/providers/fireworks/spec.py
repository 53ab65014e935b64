"""Fireworks AI (bring-your-own LoRA), as the core sees it (registry.py lists this SPEC)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciler.providers.fireworks.env import ACCOUNT_ENV, TOKEN_ENV, URL_ENV
from reconciler.providers.spec import ProviderSpec, SandboxSite, Setting, published_beside

if TYPE_CHECKING:
    from reconciler.providers.base import Provider

SANDBOX_PREFIX = "/fireworks"  # where `reconciler sandbox` mounts the emulated API
# the account the emulator's tokens own unless told otherwise (sandbox/fireworks/README.md)
SANDBOX_ACCOUNT = "reconciler-sandbox"
POLL_ENV = "RECONCILER_POLL_INTERVAL"  # seconds between reads while validating or loading
SANDBOX_LABEL = "sandbox"  # the lockfile label --sandbox connects with
SANDBOX_POLL = 0.1


def connect(env: Mapping[str, str], label: str | None, setting: Setting) -> Provider:
    from reconciler.adapters.preflight import LimitsError
    from reconciler.providers.fireworks import checks
    from reconciler.providers.fireworks.api import FireworksApi
    from reconciler.providers.fireworks.env import endpoint_from_env
    from reconciler.providers.fireworks.provider import FireworksProvider

    try:
        limit = checks.limits(setting.values.get("limits"))
    except LimitsError:  # the loader reported it already
        limit = checks.limits()
    # the sandbox's clock runs fast (workflow/embedded.py): read it often, as it loads in
    # a fraction of a second
    poll = _poll(env) or (SANDBOX_POLL if label == SANDBOX_LABEL else None)
    endpoint = endpoint_from_env(env, label)
    api = (
        FireworksApi(endpoint)
        if poll is None
        else FireworksApi(endpoint, poll=poll, serve_poll=poll)
    )
    return FireworksProvider(api, limit)


def _poll(env: Mapping[str, str]) -> float | None:
    try:
        return max(0.01, float(env[POLL_ENV])) if env.get(POLL_ENV) else None
    except ValueError:
        return None


def sandbox_env(site: SandboxSite, env: Mapping[str, str]) -> dict[str, str]:
    return {
        TOKEN_ENV: site.token,
        URL_ENV: site.url + SANDBOX_PREFIX,
        # the account the embedded emulator serves, whatever the environment names: a real
        # account id would only be refused there (PERMISSION_DENIED), as the key has no access
        ACCOUNT_ENV: SANDBOX_ACCOUNT,
    }


SPEC = ProviderSpec(
    name="fireworks",
    title="Fireworks AI",
    connect=connect,
    items_at="reconciler.providers.fireworks.items:ITEMS",
    token_variable=TOKEN_ENV,
    url_variable=URL_ENV,
    sandbox_env=sandbox_env,
    published=published_beside("reconciler.providers.fireworks"),
)
