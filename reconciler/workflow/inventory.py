"""What the accounts hold, each finetune marked managed, unmanaged or leftover (`reconciler list`).

managed    the lockfile's current record of a finetune the config declares
leftover   ours once, no longer wanted: recorded in the lockfile but gone from the config, an
           earlier version of a versioned finetune (retired, a failed candidate, ...), or
           forgotten by an apply and kept in the account (the lockfile's `leftovers`)
unmanaged  in the account, in no record of ours: made by hand, by another tool, or lost
           from the lockfile (`reconciler import NAME` adopts one the config declares)

`classify` is pure; `read` lists each account once, as a plan does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from reconciler.base.model import Desired, Observed, Recorded

if TYPE_CHECKING:
    from reconciler.workflow.session import Opened

STATES = ("managed", "leftover", "unmanaged")


@dataclass(frozen=True)
class Held:
    provider: str
    account: str
    id: str
    name: str  # as the account names it
    model: str
    state: str  # one of STATES
    finetune: str | None  # the config's or the lockfile's name it belongs to, if any
    note: str
    created_at: str | None = None
    placement: Mapping[str, bool] = field(default_factory=dict)  # a fleet's: server -> loaded


def classify(desired: Desired, recorded: Recorded, observed: Observed) -> tuple[Held, ...]:
    declared = {d.name for d in desired.finetunes}
    current = {(f.provider, f.account, f.id): (name, f) for name, f in recorded.finetunes.items()}
    # versioned finetunes keep their other versions apart (absent from older lockfiles)
    versions = getattr(recorded, "versions", {}) or {}
    earlier = {
        (v.provider, v.account, v.id): (name, v)
        for name, by_version in versions.items()
        for v in by_version.values()
    }
    kept = {left.key: left for left in recorded.leftovers}  # forgotten, not deleted
    ignored: Mapping[str, tuple[str, ...]] = getattr(desired, "ignore", {}) or {}
    found: list[Held] = []
    for (provider, account), remotes in observed.finetunes.items():
        for r in remotes:
            key = (provider, account, r.id)
            owner: str | None = None
            if key in current:
                owner, entry = current[key]
                if owner in declared:
                    version = getattr(entry, "version", None)  # versioned finetunes only
                    state, note = "managed", f"current version {version}" if version else ""
                else:
                    state = "leftover"
                    note = (
                        "in the lockfile but no longer in the config: the next apply forgets "
                        f"it (or `reconciler forget {owner}`)"
                    )
            elif key in earlier:
                owner, v = earlier[key]
                state = "leftover"
                note = f"{v.state} version {v.version} of {owner}"
            elif key in kept:
                owner, state = kept[key].name, "leftover"
                note = (
                    "made by reconciler, removed from the config and kept in the account "
                    f"(`reconciler forget {owner}` lets go of it)"
                )
            else:
                state = "unmanaged"
                patterns = ignored.get(provider, ())
                if r.name in declared:
                    owner = r.name
                    note = (
                        "declared in the config but not in the lockfile: "
                        f"`reconciler import {r.name}` adopts it"
                    )
                elif any(fnmatchcase(r.name, p) for p in patterns):
                    note = f"ignored (providers.{provider}.ignore)"
                else:
                    note = ""
            found.append(
                Held(
                    provider,
                    account,
                    r.id,
                    r.name,
                    r.model,
                    state,
                    owner,
                    note,
                    r.created_at,
                    dict(r.placement),
                )
            )
    order = {s: i for i, s in enumerate(STATES)}
    return tuple(sorted(found, key=lambda h: (h.provider, h.account, order[h.state], h.name, h.id)))


def read(s: Opened) -> tuple[Held, ...]:
    """Every finetune of every account the config or the lockfile names, classified."""
    from reconciler.state import lockfile
    from reconciler.workflow.session import observe_all

    recorded = lockfile.read_lock(s.project.lockfile)
    return classify(s.desired, recorded, observe_all(s.desired, recorded, s.providers))
