"""The plan: per finetune, what must happen and why. build() is pure: no I/O, no clock.

Given the same Desired, Observed, Recorded and Digests it returns the same Plan, so every rule
below is tested without a network. apply.run carries a Plan out without re-diffing. The
records it returns live in changes.py and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

from reconciler.adapters.catalogue import Catalogue, base_problem, deprecation_note
from reconciler.adapters.preflight import quantized_hint
from reconciler.base.diff import FieldChange, field_changes, project
from reconciler.base.errors import PlanError
from reconciler.base.model import (
    AssetDigest,
    AssetFile,
    Desired,
    DesiredFinetune,
    Digests,
    LockedFinetune,
    LockedVersion,
    Observed,
    Pending,
    Recorded,
    RemoteFinetune,
)
from reconciler.plan import adoption
from reconciler.plan.changes import (
    SYMBOLS,
    Action,
    AssetChange,
    Change,
    Plan,
    Step,
    StepKind,
    select,
)
from reconciler.plan.versions import content_version, remote_name, version_of
from reconciler.providers.base import Capabilities

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
        caps = capabilities[d.provider]
        if d.versioning:
            found = _versioned(
                d, locked, recorded.versions.get(d.name, {}), observed, digests, caps, pending
            )
            one, more = found[0], found[1:]
        else:
            one, more = _plan_one(d, locked, observed, digests, caps, pending), []
        catalogue = (catalogues or {}).get((d.provider, d.account))
        if catalogue is not None:
            one = _base_model(one, d, catalogue, desired.limits.get(d.provider), today)
        changes.append(one)
        changes.extend(more)
    # what the lock records but the config no longer declares: a finetune, or a versioned
    # one's versions (some may be all that is left of it, as after a first version's checks
    # failed)
    for name in sorted(
        (set(recorded.finetunes) | set(recorded.versions)) - declared - renamed_from
    ):
        locked = recorded.finetunes.get(name)
        versions = recorded.versions.get(name, {})
        some = locked or next(iter(versions.values()))
        caps_of = capabilities.get(some.provider)
        pruning = prune or desired.prune
        if locked is not None:
            changes.append(_removed(locked, caps_of, pruning))
        changes.extend(_removed_versions(name, locked, versions, caps_of, pruning))
    known_ids = {f.id for f in recorded.finetunes.values()} | {
        v.id for versions in recorded.versions.values() for v in versions.values()
    }
    retired = sum(
        1
        for name in declared
        for v in recorded.versions.get(name, {}).values()
        if v.state == "retired"
    )
    known_ids |= {c.remote_id for c in changes if c.remote_id}  # a change already names it
    for provider, accounts in desired.accounts.items():
        ignored = desired.ignore.get(provider, ())
        for account in accounts:
            for remote in sorted(observed.in_account(provider, account), key=lambda r: r.name):
                if any(fnmatchcase(remote.name, pattern) for pattern in ignored):
                    continue  # made by hand and meant to stay: the config says so
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
    return Plan(changes=tuple(changes), endpoints=dict(endpoints), retired=retired)


def _check_endpoints(desired: Desired, recorded: Recorded, endpoints: Mapping[str, str]) -> None:
    for provider in sorted({d.provider for d in desired.finetunes} | set(recorded.endpoints)):
        was, now = recorded.endpoints.get(provider), endpoints.get(provider)
        if was and now and was != now:
            how = (
                " (here: add --sandbox)"
                if was == "sandbox"
                else " (here: drop --sandbox)"
                if now == "sandbox"
                else ""
            )
            raise PlanError(
                f"the lockfile's {provider} records were made against {was}, but this run talks "
                f"to {now}. Mixing them would confuse one with the other: use the endpoint the "
                f"lockfile was made with{how}, or move the lockfile aside to start afresh"
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
                "this finetune another name, or, if the newcomer is yours, `reconciler forget "
                f"{d.name}` then `reconciler import {d.name}`",
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


def _versioned(
    d: DesiredFinetune,
    current: LockedFinetune | None,
    versions: Mapping[str, LockedVersion],
    observed: Observed,
    digests: Digests,
    caps: Capabilities,
    pending: Pending | None,
) -> list[Change]:
    """A versioned finetune (versioning: content): its remote name is NAME-<content version>.
    The same content plans as today; new content as a new version (never blocked); content an
    earlier version has as switching back to it (nothing sent). The first change is the
    finetune's own; any more are deletions of versions beyond `keep`."""
    local = {a.name: digests[a.path] for a in d.assets}
    version = content_version(d.fields, local)
    name = remote_name(d.name, version)
    remotes = observed.in_account(d.provider, d.account)
    by_id = {r.id: r for r in remotes}
    if current is not None and (current.provider, current.account) != (d.provider, d.account):
        current = None  # moved to another account: versions there start afresh
        versions = {}
    now = version_of(current, d.fields) if current is not None else None
    now_name = (current.remote_name or current.name) if current is not None else None
    supersedes = now_name if now != version else None

    def tagged(change: Change) -> Change:
        return replace(
            change, name=d.name, version=version, remote_name=name, supersedes=supersedes
        )

    def blocked(reason: str, **more: Any) -> list[Change]:
        return [tagged(Change(d.name, d.provider, d.account, Action.BLOCKED, reason, **more))]

    if d.keep is not None and not caps.can_delete:
        return blocked(
            f"keep: {d.keep} asks to delete old versions, but {d.provider} cannot delete a "
            "finetune: every version stays in the account. Remove keep (old versions are "
            "retired: counted, never reported as unmanaged)",
            desired=d,
        )
    if current is not None and now == version:
        # the current version: planned as an unversioned finetune under its remote name
        change = _plan_one(
            replace(d, name=now_name or name), current, observed, digests, caps, pending
        )
        change = replace(change, name=d.name, version=version, remote_name=now_name)
        if now_name and now_name != d.name:  # the commands its messages name take the
            change = _named_logically(change, now_name, d.name)  # logical name
        return [change, *_surplus(d, current, versions, by_id, caps, change)]
    dv = replace(d, name=name)
    earlier = versions.get(version)
    checks = (Step(StepKind.CHECK),) if d.checks else ()
    promote = (Step(StepKind.PROMOTE),)
    if earlier is not None and earlier.id in by_id:
        missing = [a for a in d.assets if a.name not in earlier.assets]
        uploads = tuple(Step(StepKind.UPLOAD, a, local[a.name]) for a in missing)
        base = Change(
            d.name, d.provider, d.account, Action.SWITCH, "", remote_id=earlier.id, desired=dv
        )
        if earlier.state == "retired" and not missing:
            return [
                tagged(
                    replace(
                        base,
                        reason=f"switching back to {earlier.remote_name}, the version made "
                        f"{_when(earlier.created_at)}with this content: nothing is created or "
                        "uploaded",
                        steps=promote,
                    )
                )
            ]
        why = {
            "candidate": "an apply made this version but was cut short before it became current",
            "failed": "this version failed its checks at an earlier apply",
            "retired": "this earlier version lacks some uploads",
        }[earlier.state]
        action = Action.UPLOAD if missing else Action.SWITCH
        todo = "uploading what it lacks, " if missing else ""
        gate = "checking it, " if checks else ""
        return [
            tagged(
                replace(
                    base,
                    action=action,
                    reason=f"{why}: {todo}{gate}then making it current",
                    assets=tuple(AssetChange(a.name, None, local[a.name]) for a in missing),
                    steps=(*uploads, *checks, promote[0]),
                )
            )
        ]
    squatter = next(
        (r for r in remotes if r.name == name and r.id not in _ids(current, versions)), None
    )
    if (
        squatter is not None
        and pending is not None
        and pending.op == "create"
        and (pending.provider, pending.account) == (d.provider, d.account)
        and not adoption.differences(dv, squatter, pending.since)
    ):
        # our own create of this version, cut off before the lock recorded it
        return [
            tagged(
                Change(
                    d.name,
                    d.provider,
                    d.account,
                    Action.UPLOAD,
                    f"an interrupted apply created version {name} (the lockfile's journal says "
                    "so, and it has what was sent): recording it, uploading its assets, then "
                    "making it current",
                    remote_id=squatter.id,
                    desired=dv,
                    assets=tuple(AssetChange(a.name, None, local[a.name]) for a in d.assets),
                    steps=(
                        Step(StepKind.ADOPT),
                        *(Step(StepKind.UPLOAD, a, local[a.name]) for a in d.assets),
                        *checks,
                        promote[0],
                    ),
                )
            )
        ]
    if squatter is not None:
        return blocked(
            f"a finetune named {name} (id {squatter.id}) is already in account {d.account} but "
            "not in the lockfile. Its name is this content's version, so an earlier apply "
            "most likely made it from these very files and its record was lost: "
            f"`reconciler import {d.name}` records it",
            remote_id=squatter.id,
            desired=dv,
        )
    uploads = tuple(Step(StepKind.UPLOAD, a, local[a.name]) for a in d.assets)
    create = (Step(StepKind.CREATE),)
    made = (*uploads, *create) if caps.assets_before_create else (*create, *uploads)
    if current is None:
        reason = (
            "not in the account yet"
            if earlier is None
            else f"version {name} was made before but is gone from the account: made again"
        )
        fields = field_changes({}, d.fields)
        assets = tuple(AssetChange(a.name, None, local[a.name]) for a in d.assets)
    else:
        known = dict(current.fields or {})
        before = {k: known.get(k) for k in d.fields}
        fields = field_changes(before, dict(d.fields))
        assets = tuple(
            AssetChange(a.name, current.assets.get(a.name), local[a.name]) for a in d.assets
        )
        what = [f.field for f in fields] + [
            f"{a.name} content" for a in assets if a.before != a.after
        ]
        reason = f"{', '.join(what) or 'content'} changed: new version {name} supersedes {now_name}"
    return [
        tagged(
            Change(
                d.name,
                d.provider,
                d.account,
                Action.CREATE,
                reason,
                desired=dv,
                fields=fields,
                assets=assets,
                steps=(*made, *checks, promote[0]),
            )
        )
    ]


def _named_logically(change: Change, remote: str, logical: str) -> Change:
    """Messages made for the remote name point at commands that take the logical one."""

    def fix(text: str) -> str:
        for command in ("import", "forget"):
            text = text.replace(
                f"`reconciler {command} {remote}", f"`reconciler {command} {logical}"
            )
        return text.replace(
            f"of {remote} came from `reconciler import`",
            f"of {logical} came from `reconciler import`",
        )

    return replace(change, reason=fix(change.reason), warnings=tuple(map(fix, change.warnings)))


def _when(created_at: str | None) -> str:
    return f"on {created_at[:10]} " if created_at else ""


def _ids(current: LockedFinetune | None, versions: Mapping[str, LockedVersion]) -> set[str]:
    return ({current.id} if current is not None else set()) | {v.id for v in versions.values()}


def _surplus(
    d: DesiredFinetune,
    current: LockedFinetune,
    versions: Mapping[str, LockedVersion],
    by_id: Mapping[str, RemoteFinetune],
    caps: Capabilities,
    change: Change,
) -> list[Change]:
    """keep: N deletes the versions beyond the N most recent, once the current one is ready
    (create before destroy): never the current one, never one with prevent_destroy, never a
    candidate an apply is still making current."""
    if d.keep is None or not caps.can_delete or change.action is not Action.NOOP:
        return []
    remote = by_id.get(current.id)
    if remote is None or not remote.ready:
        return []  # the new one is not ready yet: the old ones stay until it is
    # the N kept are the current one and the most recent that served (retired): a version
    # whose checks failed never served, so it is never what keep keeps, nor a way back
    served = sorted(
        (v for v in versions.values() if v.state == "retired"),
        key=lambda v: (v.created_at or "", v.version),
        reverse=True,
    )
    failed = sorted((v for v in versions.values() if v.state == "failed"), key=lambda v: v.version)
    doomed = [v for v in [*served[max(d.keep - 1, 0) :], *failed] if not v.prevent_destroy]
    return [
        Change(
            d.name,
            d.provider,
            d.account,
            Action.DELETE,
            f"a version of {d.name} older than the {d.keep} kept (keep: {d.keep})"
            if v.state == "retired"
            else f"a version of {d.name} whose checks failed (keep: {d.keep} keeps only "
            "versions that served)",
            remote_id=v.id,
            steps=(Step(StepKind.DELETE),),
            version=v.version,
            remote_name=v.remote_name,
        )
        for v in doomed
    ]


def _removed_versions(
    name: str,
    locked: LockedFinetune | None,
    versions: Mapping[str, LockedVersion],
    caps: Capabilities | None,
    prune: bool,
) -> list[Change]:
    """A versioned finetune removed from the config: its other versions go the way its
    current one goes. Without pruning (or where nothing can be deleted) the current one's
    forget drops them all from the lock; with no current one, one forget does. With pruning,
    each is deleted, but one with prevent_destroy is only forgotten, with a warning."""
    if not versions:
        return []
    ordered = sorted(versions.values(), key=lambda v: v.version)
    deleting = prune and caps is not None and caps.can_delete
    if not deleting:
        if locked is not None:
            return []  # the current one's forget drops every version with it
        first = ordered[0]
        kept = ", ".join(v.remote_name for v in ordered)
        return [
            Change(
                name,
                first.provider,
                first.account,
                Action.FORGET,
                "removed from the config",
                steps=(Step(StepKind.FORGET),),
                warnings=(
                    f"{first.provider} keeps {kept}; reconciler stops managing "
                    + ("them" if len(ordered) > 1 else "it")
                    + (
                        "; to delete them, apply with --prune (or settings.prune: true)"
                        if caps is not None and caps.can_delete
                        else ""
                    ),
                ),
            )
        ]
    if locked is not None and locked.prevent_destroy:
        return []  # the current one blocks the plan: nothing of it is touched
    return [
        Change(
            name,
            v.provider,
            v.account,
            Action.FORGET if v.prevent_destroy else Action.DELETE,
            "removed from the config, and pruning is on"
            + (
                ", but prevent_destroy was set: forgotten, not deleted" if v.prevent_destroy else ""
            ),
            remote_id=v.id,
            steps=(Step(StepKind.FORGET if v.prevent_destroy else StepKind.DELETE),),
            version=v.version,
            remote_name=v.remote_name,
            warnings=(
                (f"{v.remote_name} (id {v.id}) is kept remotely: prevent_destroy was set",)
                if v.prevent_destroy
                else ()
            ),
        )
        for v in ordered
    ]


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
            return replace(
                change, action=Action.BLOCKED, reason=problem, steps=(), fields=(), assets=()
            )
        families = getattr(limits, "lora_models", {})
        if problem is None and families.get(d.model) is None:
            notes.append(
                f"Cloudflare documents no adapter model_type for {d.model}, so the adapter's "
                "model_type could not be checked against it (any of "
                f"{', '.join(getattr(limits, 'supported_model_types', ()))} is accepted)"
            )
    note = deprecation_note(d.model, catalogue, today, getattr(limits, "deprecations", {}))
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
        "assets once uploaded: set `versioning: content` on it, so that each change is "
        "applied as a new version (NAME-<hex>) and `reconciler output` names the current one, "
        "or give it a new name by hand (the old one stays in the account), or revert the "
        "change",
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
                "prevent_destroy: false before removing it, or plan and apply without pruning "
                "(no --prune, settings.prune: false) so that it is only forgotten",
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
