"""One finetune against its account: create, adopt, replace, update, upload or leave it.

Pure, like plan.build. A versioned finetune's current version is planned here too, under its
remote name (versioned.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconciler.base.diff import FieldChange, field_changes, project
from reconciler.base.model import (
    AssetDigest,
    DesiredFinetune,
    Digests,
    LockedFinetune,
    Observed,
    Pending,
    RemoteFinetune,
)
from reconciler.plan import adoption
from reconciler.plan.changes import Action, AssetChange, Change
from reconciler.plan.steps import adopting, creating, replacing, updating, uploads
from reconciler.providers.base import Capabilities


@dataclass(frozen=True)
class _Subject:
    """The finetune being planned, what its provider can do and its local assets' content."""

    d: DesiredFinetune
    caps: Capabilities
    local: Mapping[str, AssetDigest]

    def change(self, action: Action, reason: str, **more: Any) -> Change:
        d = self.d
        return Change(d.name, d.provider, d.account, action, reason, desired=d, **more)

    def creation(
        self,
        reason: str,
        warnings: tuple[str, ...] = (),
        held: Mapping[str, AssetDigest] | None = None,
    ) -> Change:
        """Create it and upload its assets, but those `held` (uploaded already)."""
        d, kept = self.d, held or {}
        return self.change(
            Action.CREATE,
            reason,
            fields=field_changes({}, d.fields),
            assets=tuple(
                AssetChange(a.name, None, kept.get(a.name, self.local[a.name])) for a in d.assets
            ),
            steps=creating([a for a in d.assets if a.name not in kept], self.local, self.caps),
            warnings=warnings,
        )


@dataclass(frozen=True)
class _Found:
    """The recorded finetune as the account has it, and how it differs from the config."""

    remote: RemoteFinetune
    fields: tuple[FieldChange, ...]
    assets: tuple[AssetChange, ...]  # each asset: what the lock says was uploaded, local now
    replaced: tuple[AssetChange, ...]  # those whose content changed since it was uploaded


def plan_one(
    d: DesiredFinetune,
    locked: LockedFinetune | None,
    observed: Observed,
    digests: Digests,
    caps: Capabilities,
    pending: Pending | None = None,
) -> Change:
    remotes = observed.in_account(d.provider, d.account)
    it = _Subject(d, caps, {a.name: digests[a.path] for a in d.assets})
    remote = find(remotes, locked.id if locked else None, d.name)
    if locked is None:
        return _unrecorded(it, remote, adoption.journaled(pending, d))
    if remote is None:
        return _gone(it, locked, find(remotes, None, d.name))
    return _recorded(it, locked, remote)


def find(
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


def _unrecorded(it: _Subject, remote: RemoteFinetune | None, journal: Pending | None) -> Change:
    """Not in the lockfile: new, or made by an apply cut short, or someone else's name."""
    d = it.d
    # uploaded by an apply cut short before its create (a Cohere dataset): reused, if the
    # local file is still what was uploaded
    held = {
        n: a
        for n, a in (journal.assets.items() if journal is not None else ())
        if n in it.local and a == it.local[n] and a.remote_id
    }
    if remote is not None and journal is not None and journal.op == "create":
        return _interrupted(it, remote, journal, held)
    if remote is not None:
        return it.change(
            Action.BLOCKED,
            f"a finetune named {d.name} already exists in account {d.account} but is not "
            "in the lockfile, so what was uploaded to it is unknown; give this finetune "
            f"another name, or, if you know it is yours, `reconciler import {d.name}`",
            remote_id=remote.id,
        )
    if held:
        reused = ", ".join(f"{n} {a.remote_id}" for n, a in sorted(held.items()))
        return it.creation(
            f"not in the account yet; reusing what an interrupted apply uploaded for it ({reused})",
            held=held,
        )
    return it.creation("not in the account yet")


def _interrupted(
    it: _Subject, remote: RemoteFinetune, journal: Pending, held: Mapping[str, AssetDigest]
) -> Change:
    """A finetune of its name, and the journal says an apply was creating it: ours only if it
    has what was sent."""
    d = it.d
    not_ours = adoption.differences(d, remote, journal.since, held)
    if not not_ours:
        # our own create, cut off before the lock recorded it: adopt it, upload its
        # assets (those the create already used are recorded as they are)
        return it.change(
            Action.UPLOAD,
            "an interrupted apply created it (the lockfile's journal says so, and it "
            "has what was sent): recording it and uploading its assets",
            remote_id=remote.id,
            assets=tuple(
                AssetChange(a.name, None, held.get(a.name, it.local[a.name])) for a in d.assets
            ),
            steps=adopting([a for a in d.assets if a.name not in held], it.local),
        )
    return it.change(
        Action.BLOCKED,
        f"an apply that was creating {d.name} was cut off before it heard back, and a "
        f"finetune of that name (id {remote.id}) is in account {d.account}, but it is "
        f"not the one that apply was creating: {'; '.join(not_ours)}. It may be someone "
        "else's: give this finetune another name; if you know it is yours, record it "
        f"with `reconciler import {d.name}`, then plan again",
        remote_id=remote.id,
    )


def _gone(it: _Subject, locked: LockedFinetune, newcomer: RemoteFinetune | None) -> Change:
    """Recorded, but its id is no longer in the account: made again, unless its name is taken."""
    d = it.d
    if newcomer is not None:
        return it.change(
            Action.BLOCKED,
            f"the recorded finetune (id {locked.id}) is gone from account {d.account} and "
            f"another finetune named {d.name} (id {newcomer.id}) has taken its place; give "
            "this finetune another name, or, if the newcomer is yours, `reconciler forget "
            f"{d.name}` then `reconciler import {d.name}`",
            remote_id=newcomer.id,
        )
    return it.creation(
        "recorded in the lockfile but gone from the account: it will be created again",
        (f"finetune {d.name} (id {locked.id}) is no longer in account {d.account}",),
    )


def _recorded(it: _Subject, locked: LockedFinetune, remote: RemoteFinetune) -> Change:
    """Recorded and found: what differs from the config, and how the provider can change it."""
    d, caps = it.d, it.caps
    # Compare only what is known: what the list returned, else what the lockfile recorded at
    # creation (Cloudflare's list never returns `public`). A field known from neither is not
    # a change: comparing it with a missing value would plan it again forever.
    known = {**(locked.fields or {}), **remote.fields}
    declared = {k: v for k, v in d.fields.items() if k in known}
    fields = field_changes(project(known, declared), declared)
    assets = tuple(
        AssetChange(a.name, locked.assets.get(a.name), it.local[a.name]) for a in d.assets
    )
    replaced = tuple(
        a for a in assets if a.before is not None and a.after is not None and a.before != a.after
    )
    found = _Found(remote, fields, assets, replaced)
    if remote.failed or any(f.field.split(".")[0] in caps.replace_fields for f in fields):
        return _replacement(it, found)
    if fields or replaced or remote.name != d.name:
        return _update(it, locked, found)
    missing = [a for a in d.assets if a.name not in locked.assets]
    if missing:
        return it.change(
            Action.UPLOAD,
            "the lockfile records no upload of " + ", ".join(a.name for a in missing),
            remote_id=remote.id,
            assets=tuple(AssetChange(a.name, None, it.local[a.name]) for a in missing),
            steps=uploads(missing, it.local),
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
    return it.change(Action.NOOP, "up to date", remote_id=remote.id, warnings=notes)


def _replacement(it: _Subject, found: _Found) -> Change:
    """Its training failed, or a field changed that cannot change under a trained model."""
    d, caps, remote, fields = it.d, it.caps, found.remote, found.fields
    why = (
        f"training failed ({remote.status})"
        if remote.failed
        else ", ".join(f.field for f in fields if f.field.split(".")[0] in caps.replace_fields)
        + " changed, which cannot change under a trained model"
    )
    if not caps.can_delete:
        return _cannot(it, found)
    if d.prevent_destroy:
        return it.change(
            Action.BLOCKED,
            f"{why}, so it would be replaced, but prevent_destroy is set: remove "
            "prevent_destroy to allow the replacement, or revert the change",
            remote_id=remote.id,
            fields=fields,
        )
    created = it.creation("")
    return replace(
        created,
        action=Action.REPLACE,
        reason=f"{why}: it will be deleted, then created again",
        remote_id=remote.id,
        fields=fields or created.fields,
        steps=replacing(d.assets, it.local, caps),
    )


def _update(it: _Subject, locked: LockedFinetune, found: _Found) -> Change:
    """Fields, asset content or the name changed: in place, where the provider can."""
    d, caps, remote, fields, replaced = it.d, it.caps, found.remote, found.fields, found.replaced
    renamed = remote.name != d.name
    if not caps.can_update or (replaced and not caps.can_replace_assets):
        return _cannot(it, found)
    if renamed and not caps.can_rename:
        return _cannot(it, found)
    what = [f.field for f in fields] + [f"{a.name} content" for a in replaced]
    if renamed:
        what.append(f"name (was {remote.name})")
    retrains = " (it retrains)" if caps.trains_async and (fields or replaced) else ""
    files = {a.name: a for a in d.assets}
    return it.change(
        Action.UPDATE,
        f"{', '.join(what)} changed: updated in place{retrains}",
        remote_id=remote.id,
        fields=fields + ((FieldChange("name", remote.name, d.name),) if renamed else ()),
        assets=replaced,
        steps=updating([files[c.name] for c in replaced], it.local),
        previous_name=locked.name if locked.name != d.name else None,
    )


def _cannot(it: _Subject, found: _Found) -> Change:
    """A change the provider cannot make: say what changed and what to do instead."""
    d = it.d
    what = [f.field for f in found.fields] + [f"asset {a.name}" for a in found.replaced]
    if found.remote.name != d.name:
        what.append("name")
    return it.change(
        Action.BLOCKED,
        f"{', '.join(what)} changed, but {d.provider} cannot update a finetune or replace its "
        "assets once uploaded: set `versioning: content` on it, so that each change is "
        "applied as a new version (NAME-<hex>) and `reconciler output` names the current one, "
        "or give it a new name by hand (the old one stays in the account), or revert the "
        "change",
        remote_id=found.remote.id,
        fields=found.fields,
        assets=tuple(a for a in found.assets if a.before != a.after),
    )
