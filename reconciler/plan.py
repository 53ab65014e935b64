"""The plan: per finetune, what must happen and why. build() is pure: no I/O, no clock.

Given the same Desired, Observed, Recorded and Digests it returns the same Plan, so every rule
below is tested without a network. apply.run carries a Plan out without re-diffing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .diff import FieldChange, field_changes, project
from .errors import PlanError
from .model import (
    AssetDigest,
    AssetFile,
    Desired,
    DesiredFinetune,
    Digests,
    LockedFinetune,
    Observed,
    Pending,
    Recorded,
    RemoteFinetune,
)
from .providers.base import Capabilities


class Action(str, Enum):
    CREATE = "create"  # create the finetune, then upload every asset
    UPLOAD = "upload"  # upload the assets the lock lacks (e.g. after an interrupted apply)
    NOOP = "noop"
    BLOCKED = "blocked"  # changed in a way the provider cannot apply
    FORGET = "forget"  # removed from the config: dropped from the lock, kept remotely
    UNMANAGED = "unmanaged"  # in the account, not in the config or lock: reported, never touched

    @property
    def symbol(self) -> str:
        return SYMBOLS[self]

    @property
    def changes_state(self) -> bool:
        """Whether apply has work to do for it (remote calls or lock writes)."""
        return self in (Action.CREATE, Action.UPLOAD, Action.FORGET)


SYMBOLS = {
    Action.CREATE: "+",
    Action.UPLOAD: "~",
    Action.NOOP: " ",
    Action.BLOCKED: "!",
    Action.FORGET: ".",
    Action.UNMANAGED: "?",
}


class StepKind(str, Enum):
    CREATE = "create"
    ADOPT = "adopt"  # record a finetune an interrupted apply created (no remote call)
    UPLOAD = "upload"
    FORGET = "forget"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    asset: AssetFile | None = None
    digest: AssetDigest | None = None  # the content the plan expects to upload


@dataclass(frozen=True)
class AssetChange:
    name: str
    before: AssetDigest | None  # what the lock says was uploaded
    after: AssetDigest | None  # the local file now


@dataclass(frozen=True)
class Change:
    name: str
    provider: str
    account: str
    action: Action
    reason: str
    remote_id: str | None = None
    desired: DesiredFinetune | None = None
    fields: tuple[FieldChange, ...] = ()
    assets: tuple[AssetChange, ...] = ()
    steps: tuple[Step, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    # provider -> endpoint the plan was made against, what the lock records after apply
    endpoints: Mapping[str, str] = field(default_factory=dict)

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)

    @property
    def has_changes(self) -> bool:
        return any(c.action.changes_state for c in self.changes)

    @property
    def blocked(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is Action.BLOCKED)

    @property
    def actionable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action.changes_state)


def build(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    digests: Digests,
    capabilities: Mapping[str, Capabilities],
    endpoints: Mapping[str, str],
) -> Plan:
    _check_endpoints(desired, recorded, endpoints)
    changes: list[Change] = []
    declared = {d.name for d in desired.finetunes}
    for d in desired.finetunes:
        locked = recorded.finetunes.get(d.name)
        if locked is not None and (locked.provider, locked.account) != (d.provider, d.account):
            locked = None  # moved: the old one stays where it is, a new one is made
        pending = recorded.pending.get(d.name)
        changes.append(_plan_one(d, locked, observed, digests, capabilities[d.provider], pending))
    for name in sorted(set(recorded.finetunes) - declared):
        locked = recorded.finetunes[name]
        changes.append(
            Change(
                name=name,
                provider=locked.provider,
                account=locked.account,
                action=Action.FORGET,
                reason="removed from the config",
                remote_id=locked.id,
                steps=(Step(StepKind.FORGET),),
                warnings=(_forget_warning(locked, capabilities.get(locked.provider)),),
            )
        )
    known_ids = {f.id for f in recorded.finetunes.values()}
    for provider, accounts in desired.accounts.items():
        for account in accounts:
            for remote in sorted(observed.in_account(provider, account), key=lambda r: r.name):
                if remote.name not in declared and remote.id not in known_ids:
                    changes.append(
                        Change(
                            name=remote.name,
                            provider=provider,
                            account=account,
                            action=Action.UNMANAGED,
                            reason="in the account but not in the config: left untouched",
                            remote_id=remote.id,
                        )
                    )
    return Plan(changes=tuple(changes), endpoints=dict(endpoints))


def select(plan: Plan, targets: tuple[str, ...]) -> Plan:
    """Only the changes of the named finetunes (by name or provider.name address)."""
    if not targets:
        return plan
    known = {c.name for c in plan.changes} | {f"{c.provider}.{c.name}" for c in plan.changes}
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise PlanError(
            f"--target {', '.join(unknown)}: no such finetune in the config, the lockfile or the "
            "account"
        )
    wanted = set(targets)
    return Plan(
        changes=tuple(
            c for c in plan.changes if c.name in wanted or f"{c.provider}.{c.name}" in wanted
        ),
        endpoints=plan.endpoints,
    )


def _check_endpoints(desired: Desired, recorded: Recorded, endpoints: Mapping[str, str]) -> None:
    for provider in sorted({d.provider for d in desired.finetunes} | set(recorded.endpoints)):
        was, now = recorded.endpoints.get(provider), endpoints.get(provider)
        if was and now and was != now:
            raise PlanError(
                f"the lockfile's {provider} records were made against {was}, but this run talks "
                f"to {now}. Mixing them would confuse one with the other: use the endpoint the "
                "lockfile was made with, or move the lockfile aside to start afresh"
            )


def _plan_one(
    d: DesiredFinetune,
    locked: LockedFinetune | None,
    observed: Observed,
    digests: Digests,
    caps: Capabilities,
    pending: Pending | None = None,
) -> Change:
    remotes = observed.in_account(d.provider, d.account)
    local = {a.name: digests[a.path] for a in d.assets}

    def change(action: Action, reason: str, **more: Any) -> Change:
        return Change(d.name, d.provider, d.account, action, reason, desired=d, **more)

    def creation(reason: str, warnings: tuple[str, ...] = ()) -> Change:
        uploads = (Step(StepKind.UPLOAD, a, local[a.name]) for a in d.assets)
        steps = (Step(StepKind.CREATE), *uploads)
        return change(
            Action.CREATE,
            reason,
            fields=field_changes({}, d.fields),
            assets=tuple(AssetChange(a.name, None, local[a.name]) for a in d.assets),
            steps=steps,
            warnings=warnings,
        )

    remote = _find(remotes, locked.id if locked else None, d.name)
    if locked is None:
        interrupted = (
            pending is not None
            and pending.op == "create"
            and (pending.provider, pending.account) == (d.provider, d.account)
        )
        if remote is not None and interrupted:
            # our own create, cut off before the lock recorded it: adopt it, upload its assets
            return change(
                Action.UPLOAD,
                "an interrupted apply created it (the lockfile's journal says so): recording "
                "it and uploading its assets",
                remote_id=remote.id,
                assets=tuple(AssetChange(a.name, None, local[a.name]) for a in d.assets),
                steps=(
                    Step(StepKind.ADOPT),
                    *(Step(StepKind.UPLOAD, a, local[a.name]) for a in d.assets),
                ),
            )
        if remote is not None:
            return change(
                Action.BLOCKED,
                f"a finetune named {d.name} already exists in account {d.account} but is not "
                "in the lockfile, so what was uploaded to it is unknown; give this finetune "
                "another name",
                remote_id=remote.id,
            )
        return creation("not in the account yet")
    if remote is None:
        newcomer = _find(remotes, None, d.name)
        if newcomer is not None:
            return change(
                Action.BLOCKED,
                f"the recorded finetune (id {locked.id}) is gone from account {d.account} and "
                f"another finetune named {d.name} (id {newcomer.id}) has taken its place; give "
                "this finetune another name",
                remote_id=newcomer.id,
            )
        return creation(
            "recorded in the lockfile but gone from the account: it will be created again",
            (f"finetune {d.name} (id {locked.id}) is no longer in account {d.account}",),
        )
    fields = field_changes(project(remote.fields, d.fields), d.fields)
    assets = tuple(AssetChange(a.name, locked.assets.get(a.name), local[a.name]) for a in d.assets)
    replaced = [
        a for a in assets if a.before is not None and a.after is not None and a.before != a.after
    ]
    if (fields and not caps.can_update) or (replaced and not caps.can_replace_assets):
        what = [f.field for f in fields] + [f"asset {a.name}" for a in replaced]
        return change(
            Action.BLOCKED,
            (
                f"{', '.join(what)} changed, but {d.provider} cannot update a finetune or replace "
                "its assets once uploaded: give the finetune a new name to create a new one "
                "(the old one stays in the account), or revert the change"
            ),
            remote_id=remote.id,
            fields=fields,
            assets=tuple(a for a in assets if a.before != a.after),
        )
    missing = [a for a in d.assets if a.name not in locked.assets]
    if missing:
        return change(
            Action.UPLOAD,
            "the lockfile records no upload of " + ", ".join(a.name for a in missing),
            remote_id=remote.id,
            assets=tuple(AssetChange(a.name, None, local[a.name]) for a in missing),
            steps=tuple(Step(StepKind.UPLOAD, a, local[a.name]) for a in missing),
        )
    unverified = sorted(locked.unverified)
    notes = (
        (
            f"{', '.join(unverified)} of {d.name} came from `reconciler import` and are assumed "
            f"to match what was uploaded; once checked, run `reconciler import {d.name} --confirm`",
        )
        if unverified
        else ()
    )
    return change(Action.NOOP, "up to date", remote_id=remote.id, warnings=notes)


def _find(
    remotes: tuple[RemoteFinetune, ...], remote_id: str | None, name: str
) -> RemoteFinetune | None:
    if remote_id is not None:
        for r in remotes:
            if r.id == remote_id:
                return r
        return None  # the recorded one is gone; a same-named newcomer is not ours
    for r in remotes:
        if r.name == name:
            return r
    return None


def _forget_warning(locked: LockedFinetune, caps: Capabilities | None) -> str:
    if caps is not None and not caps.can_delete:
        return (
            f"{locked.provider} keeps finetune {locked.name} (id {locked.id}); reconciler will "
            "stop managing it, and it cannot delete it"
        )
    return f"finetune {locked.name} (id {locked.id}) is kept remotely; reconciler stops managing it"
