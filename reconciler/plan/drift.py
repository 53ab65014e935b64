"""Drift: what changed remotely since the lockfile was written. Pure, like plan.build.

It answers a scheduled job's question, "did someone change our accounts behind our back?",
and nothing else: local edits to the config are the plan's business, not drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase

from reconciler.base.diff import FieldChange, field_changes, project
from reconciler.base.model import LockedFinetune, Observed, Recorded


class DriftKind(str, Enum):
    GONE = "gone"  # recorded, no longer in the account
    REPLACED = "replaced"  # recorded id gone, another finetune has the name
    CHANGED = "changed"  # same id, fields differ from what was recorded
    UNMANAGED = "unmanaged"  # in a managed account, not recorded
    LEFTOVER = "leftover"  # ours once, forgotten and kept in the account: shown, not drift


def is_drift(items: tuple[Drift, ...]) -> bool:
    """Whether anything in `items` is drift (leftovers are reported, never drift)."""
    return any(d.kind is not DriftKind.LEFTOVER for d in items)


@dataclass(frozen=True)
class Drift:
    kind: DriftKind
    name: str
    provider: str
    account: str
    remote_id: str | None
    detail: str
    fields: tuple[FieldChange, ...] = ()


def detect(
    recorded: Recorded,
    observed: Observed,
    accounts: Mapping[str, tuple[str, ...]],
    ignore: Mapping[str, tuple[str, ...]] | None = None,
    declared: frozenset[str] = frozenset(),
) -> tuple[Drift, ...]:
    """`ignore`: provider -> names or globs of finetunes made by hand and meant to stay;
    `declared`: the config's names, whose unmanaged namesakes `reconciler import` adopts."""
    return (
        *_of_finetunes(recorded, observed),
        *_of_versions(recorded, observed),
        *_unmanaged(recorded, observed, accounts, ignore or {}, declared),
        *_leftovers(recorded, observed),
    )


def _of_finetunes(recorded: Recorded, observed: Observed) -> list[Drift]:
    """Recorded finetunes gone, replaced by a stranger of their name, or changed."""
    found: list[Drift] = []
    for name, locked in sorted(recorded.finetunes.items()):
        remotes = observed.finetunes.get((locked.provider, locked.account))
        if remotes is None:
            continue  # that account was not read: nothing can be said
        by_id = {r.id: r for r in remotes}
        remote = by_id.get(locked.id)
        if remote is None:
            called = locked.remote_name or name  # a versioned one's name at the provider
            stranger = next((r for r in remotes if r.name == called), None)
            if stranger is not None:
                found.append(
                    _drift(
                        DriftKind.REPLACED,
                        locked,
                        stranger.id,
                        f"id {locked.id} is gone; "
                        f"a finetune of the same name now has id {stranger.id}",
                    )
                )
            else:
                found.append(_drift(DriftKind.GONE, locked, locked.id, "no longer in the account"))
            continue
        # only the fields the list really returns: Cloudflare's omits `public`, and a field
        # the answer does not carry cannot have drifted as far as anyone can see
        recorded_fields = {k: v for k, v in _recorded_fields(locked).items() if k in remote.fields}
        fields = field_changes(recorded_fields, project(dict(remote.fields), recorded_fields))
        if fields:
            changed = ", ".join(f.field for f in fields)
            found.append(_drift(DriftKind.CHANGED, locked, remote.id, f"{changed} changed", fields))
    return found


def _of_versions(recorded: Recorded, observed: Observed) -> list[Drift]:
    """Earlier versions of versioned finetunes: retired, not unmanaged; drift only if they
    vanish or change."""
    found: list[Drift] = []
    for name, versions in sorted(recorded.versions.items()):
        for version, v in sorted(versions.items()):
            remotes = observed.finetunes.get((v.provider, v.account))
            if remotes is None:
                continue
            remote = next((r for r in remotes if r.id == v.id), None)
            label = f"{name}@{version}"
            if remote is None:
                found.append(
                    Drift(
                        DriftKind.GONE,
                        label,
                        v.provider,
                        v.account,
                        v.id,
                        f"its {v.state} version {v.remote_name} is no longer in the account",
                    )
                )
                continue
            was = {
                k: val for k, val in (v.fields or {"model": v.model}).items() if k in remote.fields
            }
            fields = field_changes(was, project(dict(remote.fields), was))
            if fields:
                changed = ", ".join(f.field for f in fields)
                found.append(
                    Drift(
                        DriftKind.CHANGED,
                        label,
                        v.provider,
                        v.account,
                        v.id,
                        f"{changed} of its {v.state} version {v.remote_name} changed",
                        fields,
                    )
                )
    return found


def _unmanaged(
    recorded: Recorded,
    observed: Observed,
    accounts: Mapping[str, tuple[str, ...]],
    ignore: Mapping[str, tuple[str, ...]],
    declared: frozenset[str] = frozenset(),
) -> list[Drift]:
    """In a managed account, recorded neither as a finetune nor as a version, nor ignored."""
    known = {(f.provider, f.account, f.id) for f in recorded.finetunes.values()} | {
        (v.provider, v.account, v.id) for vs in recorded.versions.values() for v in vs.values()
    }
    known |= recorded.leftover_ids()
    found: list[Drift] = []
    for provider, account_ids in sorted(accounts.items()):
        for account in account_ids:
            for r in sorted(observed.finetunes.get((provider, account), ()), key=lambda r: r.name):
                if any(fnmatchcase(r.name, p) for p in ignore.get(provider, ())):
                    continue
                if (provider, account, r.id) not in known:
                    found.append(
                        Drift(
                            DriftKind.UNMANAGED,
                            r.name,
                            provider,
                            account,
                            r.id,
                            "in the account but not in the lockfile"
                            + (
                                f"; declared in the config: `reconciler import {r.name}` adopts it"
                                if r.name in declared
                                else ""
                            ),
                        )
                    )
    return found


def _leftovers(recorded: Recorded, observed: Observed) -> list[Drift]:
    """What reconciler made and forgot without deleting, still in its account."""
    found: list[Drift] = []
    for left in recorded.leftovers:
        remotes = observed.finetunes.get((left.provider, left.account), ())
        if any(r.id == left.id for r in remotes):
            found.append(
                Drift(
                    DriftKind.LEFTOVER,
                    left.remote_name,
                    left.provider,
                    left.account,
                    left.id,
                    f"made by reconciler as {left.name}, since removed from the config and kept "
                    f"in the account; not drift (`reconciler forget {left.name}` lets go of it)",
                )
            )
    return found


def _drift(
    kind: DriftKind,
    locked: LockedFinetune,
    remote_id: str | None,
    detail: str,
    fields: tuple[FieldChange, ...] = (),
) -> Drift:
    return Drift(kind, locked.name, locked.provider, locked.account, remote_id, detail, fields)


def _recorded_fields(locked: LockedFinetune) -> dict[str, object]:
    return dict(locked.fields) if locked.fields is not None else {"model": locked.model}
