"""ProviderSpec: everything the core asks about a provider, offered by the provider's package.

The core (config, lockfile, sandbox wiring, commands) never compares a provider's name: it asks
the provider's spec, found through the registry (registry.py). A spec module stays light to
import: the client (httpx and the API shapes) is imported only when `connect` is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # the items and the client load with a config, not on start-up
    from reconciler.config.items import ItemKind
    from reconciler.providers.base import Provider


@dataclass(frozen=True)
class Setting:
    """What a provider is connected with beside the environment: its providers.<name> block of
    the config (interpolated), and the config's folder, which relative paths in it start from."""

    values: Mapping[str, Any]
    base: Path


# (environment, lockfile label, the config's settings) -> a connected provider
Connect = Callable[[Mapping[str, str], "str | None", Setting], "Provider"]


@dataclass(frozen=True)
class SandboxSite:
    """A running sandbox, as `--sandbox` hands it to each provider's spec."""

    url: str  # http://127.0.0.1:PORT: each emulated API is mounted under its own prefix
    token: str  # the sandbox's token: a real one is never sent to it
    account: str  # the account the sandbox serves when the environment names none
    state_dir: Path  # the sandbox's own folder (a provider may keep files there: vLLM's store)


# (the sandbox, the environment) -> the variables that point the provider at the sandbox
SandboxEnv = Callable[[SandboxSite, Mapping[str, str]], Mapping[str, str]]


@dataclass(frozen=True)
class ProviderSpec:
    name: str  # the config's `provider:` value and the lockfile's key
    title: str  # how messages name it: "Cloudflare Workers AI"
    connect: Connect
    # "module:NAME" of its ItemKind (how a config item becomes a Desired record; its account
    # rule; its limits), imported at first use: `reconciler --help` needs none of it
    items_at: str
    token_variable: str  # the credential: its value is a secret, never shown
    url_variable: str  # overrides the API's base URL
    sandbox_env: SandboxEnv
    # the asset a provider trains from ("dataset" for Cohere), None for adapter uploads
    dataset_asset: str | None = None
    # a module holding the provider's own commands (COMMANDS: a tuple of click commands),
    # imported only by the command line
    commands: str | None = None
    # limits published as data, beside the spec (the lockfile and tests read them)
    published: Callable[[], Mapping[str, Any]] | None = None

    @property
    def items(self) -> ItemKind:
        return _imported(self.items_at)

    @property
    def required_assets(self) -> tuple[str, ...]:
        if self.dataset_asset is not None:
            return (self.dataset_asset,)
        data = self.published() if self.published is not None else {}
        return tuple(data.get("required_files", ()))


@cache
def _imported(where: str) -> ItemKind:
    module, _, name = where.partition(":")
    return cast("ItemKind", getattr(importlib.import_module(module), name))


def published_beside(package: str) -> Callable[[], Mapping[str, Any]]:
    """The reader of a provider's published limits (limits.json in its package)."""
    return lambda: shipped_json(package)


def shipped_json(package: str, name: str = "limits.json") -> Mapping[str, Any]:
    """A data file shipped in a provider's package (its published limits or catalogue
    snapshot), read at first use: not on the command line's start-up. Each call parses a
    fresh copy (callers may change theirs); the file itself is read once per process, since
    the lockfile and the config ask for every finetune (1,000 reads cost 0.2 s)."""
    import json

    data: dict[str, Any] = json.loads(_shipped_text(package, name))
    return data


@cache
def _shipped_text(package: str, name: str) -> str:
    from importlib import resources

    return resources.files(package).joinpath(name).read_text("utf-8")
