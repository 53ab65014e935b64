"""The plan: per finetune, what must happen and why. build() is pure: no I/O, no clock.

Given the same Desired, Observed, Recorded and Digests it returns the same Plan, so every rule
below is tested without a network. apply.run carries a Plan out without re-diffing. The
records it returns live in changes.py and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import adoption
from .catalogue import Catalogue, base_problem, deprecation_note
from .changes import (
    SYMBOLS,
    Action,
    AssetChange,
    Change,
    Plan,
    Step,
    StepKind,
    select,
)
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
from .preflight import quantized_hint
from .providers.base import Capabilities

__all__ = [
    "SYMBOLS",
    "Action",
    "AssetChange",
    "Change",
    "Plan",
    "Step",
    "StepKind",
    "build",
    "select",
]


def build(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    digests: Digests,
    capabilities: Mapping[str, Capabilities],
    endpoints: Mapping[str, str],
    prune: bool = False,
    catalogues: Mapping[tuple[str, str], Catalogue] | None = None,
    today: str | None = None,
) -> Plan:
    """`catalogues`: each account's model catalogue, where its provider serves one; `today`
    (an ISO date) tells a past deprecation from a planned one."""
    _check_endpoints(desired, recorded, endpoints)
    changes: list[Change] = []
    declared = {d.name for d in desired.finetunes}
    renamed_from = {d.previous_name for d in desired.finetunes if d.previous_name}
    for d in desired.finetunes:
        locked = recorded.finetunes.get(d.name)
        if locked is None and d.previous_name:
            locked = recorded.finetunes.get(d.previous_name)  # a rename, declared
        if locked is not None and (locked.provider, locked.account) != (d.provider, d.account):
            locked = None  # moved: the old one stays where it is, a new one is made
        pending = recorded.pending.get(d.name)
        one = _plan_one(d, locked, observed, digests, capabilities[d.provider], pending)
        catalogue = (catalogues or {}).get((d.provider, d.account))
        if catalogue is not None:
            one = _base_model(one, d, catalogue, desired.limits.get(d.provider), today)
        changes.append(one)
    for name in sorted(set(recorded.finetunes) - declared - renamed_from):
        locked = recorded.finetunes[name]
        changes.append(_removed(locked, capabilities.get(locked.provider), prune or desired.prune))
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
        uploads = tuple(Step(StepKind.UPLOAD, a, local[a.name]) for a in d.assets)
        create = (Step(StepKind.CREATE),)
        steps = uploads + create if caps.assets_before_create else create + uploads
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
        journaled = pending is not None and (pending.provider, pending.account) == (
            d.provider,
            d.account,
        )
        interrupted = journaled and pending is not None and pending.op == "create"
        # uploaded by an apply cut short before its create (a Cohere dataset): reused, if the
        # local file is still what was uploaded
        held = {
            n: a
            for n, a in (pending.assets.items() if journaled and pending is not None else ())
            if n in local and a == local[n] and a.remote_id
        }
        if remote is not None and interrupted and pending is not None:
            not_ours = adoption.differences(d, remote, pending.since, held)
            if not not_ours:
                # our own create, cut off before the lock recorded it: adopt it, upload its
                # assets (those the create already used are recorded as they are)
                return change(
                    Action.UPLOAD,
                    "an interrupted apply created it (the lockfile's journal says so, and it "
                    "has what was sent): recording it and uploading its assets",
                    remote_id=remote.id,
                    assets=tuple(
                        AssetChange(a.name, None, held.get(a.name, local[a.name])) for a in d.assets
                    ),
                    steps=(
                        Step(StepKind.ADOPT),
                        *(
                            Step(StepKind.UPLOAD, a, local[a.name])
                            for a in d.assets
                            if a.name not in held
                        ),
                    ),
                )
            return change(
                Action.BLOCKED,
                f"an apply that was creating {d.name} was cut off before it heard back, and a "
                f"finetune of that name (id {remote.id}) is in account {d.account}, but it is "
                f"not the one that apply was creating: {'; '.join(not_ours)}. It may be someone "
                "else's: give this finetune another name; if you know it is yours, record it "
                f"with `reconciler import {d.name}`, then plan again",
                remote_id=remote.id,
            )
        if remote is not None:
            return change(
                Action.BLOCKED,
                f"a finetune named {d.name} already exists in account {d.account} but is not "
                "in the lockfile, so what was uploaded to it is unknown; give this finetune "
                f"another name, or, if you know it is yours, `reconciler import {d.name}`",
                remote_id=remote.id,
            )
        if held:
            created = creation("not in the account yet")
            reused = ", ".join(f"{n} {a.remote_id}" for n, a in sorted(held.items()))
            return replace(
                created,
                reason=f"not in the account yet; reusing what an interrupted apply uploaded "
                f"for it ({reused})",
                assets=tuple(
                    AssetChange(a.name, None, held.get(a.name, local[a.name])) for a in d.assets
                ),
                steps=tuple(
                    s
                    for s in created.steps
                    if not (s.kind is StepKind.UPLOAD and s.asset and s.asset.name in held)
                ),
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
    # Compare only what is known: what the list returned, else what the lockfile recorded at
    # creation (Cloudflare's list never returns `public`). A field known from neither is not
    # a change: comparing it with a missing value would plan it again forever.
    known = {**(locked.fields or {}), **remote.fields}
    declared = {k: v for k, v in d.fields.items() if k in known}
    fields = field_changes(project(known, declared), declared)
    assets = tuple(AssetChange(a.name, locked.assets.get(a.name), local[a.name]) for a in d.assets)
    replaced = [
        a for a in assets if a.before is not None and a.after is not None and a.before != a.after
    ]
    renamed = remote.name != d.name
    if remote.failed or any(f.field.split(".")[0] in caps.replace_fields for f in fields):
        why = (
            f"training failed ({remote.status})"
            if remote.failed
            else ", ".join(f.field for f in fields if f.field.split(".")[0] in caps.replace_fields)
            + " changed, which cannot change under a trained model"
        )
        if not caps.can_delete:
            return _cannot(change, d, remote, fields, assets, replaced)
        if d.prevent_destroy:
            return change(
                Action.BLOCKED,
                f"{why}, so it would be replaced, but prevent_destroy is set: remove "
                "prevent_destroy to allow the replacement, or revert the change",
                remote_id=remote.id,
                fields=fields,
            )
        created = creation("")
        return replace(
            created,
            action=Action.REPLACE,
            reason=f"{why}: it will be deleted, then created again",
            remote_id=remote.id,
            fields=fields or created.fields,
            steps=(Step(StepKind.DELETE), *created.steps),
        )
    if fields or replaced or renamed:
        if not caps.can_update or (replaced and not caps.can_replace_assets):
            return _cannot(change, d, remote, fields, assets, replaced)
        if renamed and not caps.can_rename:
            return _cannot(change, d, remote, fields, assets, replaced)
        what = [f.field for f in fields] + [f"{a.name} content" for a in replaced]
        if renamed:
            what.append(f"name (was {remote.name})")
        retrains = " (it retrains)" if caps.trains_async and (fields or replaced) else ""
        return change(
            Action.UPDATE,
            f"{', '.join(what)} changed: updated in place{retrains}",
            remote_id=remote.id,
            fields=fields + ((FieldChange("name", remote.name, d.name),) if renamed else ()),
            assets=tuple(replaced),
            steps=(
                *(Step(StepKind.UPLOAD, a.asset, a.after) for a in _by_name(d, replaced)),
                Step(StepKind.UPDATE),
            ),
            previous_name=locked.name if locked.name != d.name else None,
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


def _base_model(
    change: Change, d: DesiredFinetune, catalogue: Catalogue, limits: Any, today: str | None
) -> Change:
    """The base model against the account's catalogue: a create on a base that takes no
    adapter is blocked before anything is sent; a deprecation is a warning on every plan."""
    notes = list(change.warnings)
    if change.action in (Action.CREATE, Action.UPLOAD):
        declared: frozenset[str] = getattr(limits, "declared_models", frozenset())
        problem = base_problem(d.model, catalogue, declared, quantized_hint(d.model))
        if problem is not None and change.action is Action.CREATE:
            return replace(change, action=Action.BLOCKED, reason=problem, steps=())
        families = getattr(limits, "lora_models", {})
        if problem is None and families.get(d.model) is None:
            notes.append(
                f"Cloudflare documents no adapter model_type for {d.model}, so the adapter's "
                "model_type could not be checked against it (any of "
                f"{', '.join(getattr(limits, 'supported_model_types', ()))} is accepted)"
            )
    note = deprecation_note(d.model, catalogue, today)
    if note is not None:
        notes.append(note)
    return replace(change, warnings=tuple(notes)) if notes != list(change.warnings) else change


def _cannot(
    change: Any,
    d: DesiredFinetune,
    remote: RemoteFinetune,
    fields: tuple[FieldChange, ...],
    assets: tuple[AssetChange, ...],
    replaced: list[AssetChange],
) -> Change:
    """A change the provider cannot make: say what changed and what to do instead."""
    what = [f.field for f in fields] + [f"asset {a.name}" for a in replaced]
    if remote.name != d.name:
        what.append("name")
    result: Change = change(
        Action.BLOCKED,
        f"{', '.join(what)} changed, but {d.provider} cannot update a finetune or replace its "
        "assets once uploaded: give the finetune a new name to create a new one (the old one "
        "stays in the account), or revert the change",
        remote_id=remote.id,
        fields=fields,
        assets=tuple(a for a in assets if a.before != a.after),
    )
    return result


@dataclass(frozen=True)
class _Pair:
    asset: AssetFile
    after: AssetDigest | None


def _by_name(d: DesiredFinetune, changed: list[AssetChange]) -> list[_Pair]:
    files = {a.name: a for a in d.assets}
    return [_Pair(files[c.name], c.after) for c in changed]


def _removed(locked: LockedFinetune, caps: Capabilities | None, prune: bool) -> Change:
    """A finetune gone from the config: deleted if pruning and the provider can, else forgotten."""

    def change(action: Action, reason: str, **more: Any) -> Change:
        return Change(
            locked.name, locked.provider, locked.account, action, reason, locked.id, **more
        )

    if prune and caps is not None and caps.can_delete:
        if locked.prevent_destroy:
            return change(
                Action.BLOCKED,
                "removed from the config with pruning on, but prevent_destroy was set when it "
                "was applied: put it back in the config, or apply it once with "
                "prevent_destroy: false before removing it",
            )
        return change(
            Action.DELETE,
            "removed from the config, and pruning is on",
            steps=(Step(StepKind.DELETE),),
        )
    warning = _forget_warning(locked, caps)
    if caps is not None and caps.can_delete:
        warning += "; to delete it, apply with --prune (or settings.prune: true)"
    return change(
        Action.FORGET,
        "removed from the config",
        steps=(Step(StepKind.FORGET),),
        warnings=(warning,),
    )


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
