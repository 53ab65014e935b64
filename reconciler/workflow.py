"""The library calls behind the commands: load everything, read remote state, plan; apply.

The CLI calls one function here per command and renders what it returns; nothing here knows
about click or terminals.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import apply as apply_mod
from . import assets, config, lockfile
from . import plan as plan_mod
from .model import Desired, Observed, Recorded
from .providers import registry
from .providers.base import Provider


@dataclass(frozen=True)
class Planned:
    desired: Desired
    recorded: Recorded
    lock_path: Path
    plan: plan_mod.Plan


def validate(config_path: Path, env: Mapping[str, str]) -> Desired:
    """Parse and check the config and its files; no network. Raises ConfigError."""
    return config.load(config_path, env)


@contextmanager
def open_providers(
    names: set[str], env: Mapping[str, str], label: str | None
) -> Iterator[dict[str, Provider]]:
    opened: dict[str, Provider] = {}
    try:
        for name in sorted(names):
            opened[name] = registry.build(name, env, label)
        yield opened
    finally:
        for provider in opened.values():
            provider.close()


def read_observed(desired: Desired, providers: Mapping[str, Provider]) -> Observed:
    """One list read per (provider, account): never a call per finetune."""
    return Observed(
        finetunes={
            (name, account): providers[name].list_finetunes(account)
            for name, accounts in desired.accounts.items()
            for account in accounts
        }
    )


def make_plan(
    config_path: Path, env: Mapping[str, str], providers: Mapping[str, Provider]
) -> Planned:
    desired = config.load(config_path, env)
    lock_path = config.lockfile_path(config_path)
    recorded = lockfile.load(lock_path)
    observed = read_observed(desired, providers)
    digests = assets.digest_all(a for d in desired.finetunes for a in d.assets)
    plan = plan_mod.build(
        desired,
        observed,
        recorded,
        digests,
        capabilities={n: p.capabilities for n, p in providers.items()},
        endpoints={n: p.endpoint for n, p in providers.items()},
    )
    return Planned(desired=desired, recorded=recorded, lock_path=lock_path, plan=plan)


def providers_for(config_path: Path, env: Mapping[str, str]) -> set[str]:
    """Which providers a config needs, after validating it (so bad input fails before auth)."""
    return set(config.load(config_path, env).accounts)


def apply(
    planned: Planned,
    providers: Mapping[str, Provider],
    report: apply_mod.Report | None = None,
    parallelism: int = 4,
) -> apply_mod.Result:
    writer = lockfile.LockWriter(planned.lock_path, planned.recorded)
    return apply_mod.run(planned.plan, providers, writer, report, parallelism)
