"""Saved plans: the plan plus fingerprints of everything it was computed from.

`apply PLANFILE` recomputes the fingerprints and refuses, naming each difference, if any input
moved since review: the config, the lockfile, an asset's content or an account's remote state.
A plan file holds no secrets: tokens are never part of a plan or of what is fingerprinted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, codec, lockfile
from .errors import PlanFileError, StalePlanError
from .model import Desired, Digests, Observed, Recorded
from .plan import Plan

KIND = "reconciler-plan"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Fingerprints:
    config: str
    lockfile: str
    assets: Mapping[str, str]  # path relative to the config's folder -> sha256 of its content
    observed: Mapping[str, str]  # "provider/account" -> hash of what its list returned
    endpoints: Mapping[str, str]


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def fingerprint(
    desired: Desired,
    recorded: Recorded,
    digests: Digests,
    observed: Observed,
    endpoints: Mapping[str, str],
) -> Fingerprints:
    base = desired.config_path.resolve().parent
    named: dict[Path, str] = {}

    def relative(path: Path) -> str:
        # each path resolved once, against a base resolved once: resolve() is an lstat per
        # path component, and 1,000 finetunes ask for 4,000 of these
        if path not in named:
            named[path] = codec.relative(path, base, base_resolved=True)
        return named[path]

    declared = [
        {
            "name": d.name,
            "provider": d.provider,
            "account": d.account,
            "fields": d.fields,
            "prevent_destroy": d.prevent_destroy,
            "previous_name": d.previous_name,
            "assets": {a.name: relative(a.path) for a in d.assets},
        }
        for d in desired.finetunes
    ]
    return Fingerprints(
        config=_hash({"finetunes": declared, "accounts": dict(desired.accounts)}),
        lockfile=_hash(lockfile.to_json(recorded)),
        assets={relative(p): d.sha256 for p, d in sorted(digests.items())},
        observed={
            f"{provider}/{account}": _hash(
                [
                    [r.id, r.name, r.fields, r.status, r.modified_at]
                    for r in sorted(remotes, key=lambda r: r.id)
                ]
            )
            for (provider, account), remotes in sorted(observed.finetunes.items())
        },
        endpoints=dict(endpoints),
    )


def differences(saved: Fingerprints, now: Fingerprints) -> list[str]:
    """What moved since the plan was made, one readable line per input."""
    found: list[str] = []
    if saved.endpoints != now.endpoints:
        found.append(
            f"the endpoints differ: planned against {dict(saved.endpoints)}, "
            f"now {dict(now.endpoints)}"
        )
    if saved.config != now.config:
        found.append("the config declares something different (a finetune, a field or an account)")
    if saved.lockfile != now.lockfile:
        found.append("the lockfile changed (another apply, an import or a forget ran since)")
    for path in sorted(set(saved.assets) | set(now.assets)):
        was, is_ = saved.assets.get(path), now.assets.get(path)
        if was != is_:
            if was is None:
                found.append(f"{path} is a new asset")
            elif is_ is None:
                found.append(f"{path} is no longer an asset of the config")
            else:
                found.append(f"{path} changed content ({was[:19]}… -> {is_[:19]}…)")
    for key in sorted(set(saved.observed) | set(now.observed)):
        if saved.observed.get(key) != now.observed.get(key):
            provider, account = key.split("/", 1)
            found.append(f"the finetunes in {provider} account {account} changed remotely")
    return found


def save(path: Path, plan: Plan, prints: Fingerprints, config_path: Path) -> None:
    base = config_path.resolve().parent
    data = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "reconciler_version": __version__,
        "config": str(config_path),
        "fingerprints": {
            "config": prints.config,
            "lockfile": prints.lockfile,
            "assets": dict(prints.assets),
            "observed": dict(prints.observed),
            "endpoints": dict(prints.endpoints),
        },
        "plan": codec.plan_to_data(plan, base),
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")


@dataclass(frozen=True)
class Saved:
    config_path: Path
    fingerprints: Fingerprints
    data: Mapping[str, Any]

    def plan(self, config_path: Path) -> Plan:
        return codec.plan_from_data(dict(self.data), config_path.resolve().parent)


def load(path: Path) -> Saved:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanFileError(f"{path}: not a reconciler plan file ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise PlanFileError(f"{path}: not a reconciler plan file (made with `reconciler plan -o`)")
    if data.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(
            f"{path}: plan format_version {data.get('format_version')} is not the one this "
            f"reconciler reads ({FORMAT_VERSION}); make the plan again with this version"
        )
    try:
        f = data["fingerprints"]
        prints = Fingerprints(
            config=f["config"],
            lockfile=f["lockfile"],
            assets=dict(f["assets"]),
            observed=dict(f["observed"]),
            endpoints=dict(f["endpoints"]),
        )
        saved = Saved(Path(data["config"]), prints, data["plan"])
        saved.plan(saved.config_path)  # every field present and well-typed
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(
            f"{path}: the plan file is damaged ({type(exc).__name__}: {exc})"
        ) from None
    return saved


def check_config(path: Path, planned_for: Path, given: Path) -> None:
    """The plan applies to the config it was made from: the same path as given (a relative
    path, in another checkout of the same repository) or the same file."""
    same = os.path.normpath(planned_for) == os.path.normpath(given) or (
        planned_for.exists() and given.exists() and planned_for.resolve() == given.resolve()
    )
    if not same:
        raise PlanFileError(
            f"the plan {path} was made for {planned_for}, not {given}; apply it with that "
            "config, or make a new plan"
        )


def check_fresh(path: Path, saved: Fingerprints, now: Fingerprints) -> None:
    moved = differences(saved, now)
    if moved:
        lines = "\n".join(f"  - {m}" for m in moved)
        raise StalePlanError(
            f"the saved plan {path} is stale; since it was made:\n{lines}\n"
            "Nothing was applied. Make and review a new plan."
        )
