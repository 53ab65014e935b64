"""Provider name -> its spec; a plain dict, as pre-commit does it. Adding a provider is one line
here (and its package: providers/<name>/, sandbox/<name>/, and its item in the schema)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.providers.cloudflare.spec import SPEC as CLOUDFLARE
from reconciler.providers.cohere.spec import SPEC as COHERE
from reconciler.providers.fireworks.spec import SPEC as FIREWORKS
from reconciler.providers.spec import ProviderSpec, Setting
from reconciler.providers.vllm.spec import SPEC as VLLM

if TYPE_CHECKING:  # annotations only: none of them loads on the command line's start-up
    from reconciler.base.model import Desired, DesiredFinetune
    from reconciler.config.items import ItemKind
    from reconciler.providers.base import Provider
    from reconciler.sources.base import RemoteSource
    from reconciler.state.statcache import StatCache

SPECS: dict[str, ProviderSpec] = {s.name: s for s in (CLOUDFLARE, COHERE, VLLM, FIREWORKS)}


def spec(name: str) -> ProviderSpec:
    """The spec of a registered provider (KeyError for an unknown name)."""
    return SPECS[name]


def specs() -> tuple[ProviderSpec, ...]:
    return tuple(SPECS.values())


def item_kinds() -> dict[str, ItemKind]:
    return {name: s.items for name, s in SPECS.items()}


def load_config(path: Path, env: Mapping[str, str], cache: StatCache | None = None) -> Desired:
    """The config at `path`, each finetune built by its provider (config.loader.load with every
    registered provider's ItemKind)."""
    from reconciler.config import loader  # jsonschema: not at the command line's start-up

    return loader.load(path, env, cache, kinds=item_kinds())


def remote_checks(
    settings: Mapping[str, Mapping[str, Any]],
) -> dict[str, Callable[[DesiredFinetune, RemoteSource], list[str]]]:
    """provider -> its own check of an adapter read through a remote source (hf:, files:),
    given the config's providers.<name> block, for the providers whose items have one."""
    found: dict[str, Callable[[DesiredFinetune, RemoteSource], list[str]]] = {}
    for name, kind in item_kinds().items():
        check = getattr(kind, "check_remote", None)
        if check is not None:
            found[name] = partial(check, settings=settings.get(name) or {})
    return found


def account_variables() -> tuple[str, ...]:
    """The environment variables that name an account, of the providers that have accounts."""
    rules = (s.items.account for s in SPECS.values())
    return tuple(sorted({rule.variable for rule in rules if rule is not None}))


def limits(name: str) -> Mapping[str, Any]:
    """The provider's published limits, as shipped beside its spec ({} if it has none)."""
    published = SPECS[name].published
    return published() if published is not None else {}


def required_assets(name: str) -> tuple[str, ...]:
    return SPECS[name].required_assets


def build(
    name: str,
    env: Mapping[str, str],
    label: str | None = None,
    setting: Setting | None = None,
) -> Provider:
    """The provider connected: from the environment, and the config's providers.<name> block
    where the provider reads one (a vLLM fleet)."""
    return SPECS[name].connect(env, label, setting or Setting({}, Path(".")))
