"""A versioned finetune (versioning: content): its remote name is NAME-<content version>.

The same content plans as an unversioned finetune under that name (single.py); new content
as a new version (never blocked); content an earlier version has as switching back to it
(nothing sent). Pure, like plan.build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconciler.base.diff import field_changes, project
from reconciler.base.model import (
    AssetDigest,
    DesiredFinetune,
    Digests,
    LockedFinetune,
    LockedVersion,
    Observed,
    Pending,
    RemoteFinetune,
)
from reconciler.plan import adoption
from reconciler.plan.changes import Action, AssetChange, Change
from reconciler.plan.keep import superseded, surplus
from reconciler.plan.single import plan_one
from reconciler.plan.steps import adopting, creating, promoting, uploads
from reconciler.plan.versions import content_version, remote_name, version_of
from reconciler.providers.base import Capabilities


@dataclass(frozen=True)
class _Version:
    """The version the config's content makes, and the one it would take over from."""

    d: DesiredFinetune  # as declared, under its logical name
    dv: DesiredFinetune  # the same, under the version's remote name
    version: str
    supersedes: str | None  # the current version's remote name, if another one is current
    local: Mapping[str, AssetDigest]

    def change(self, action: Action, reason: str, **more: Any) -> Change:
        """A change about this version, under the finetune's logical name."""
        d = self.d
        return Change(
            d.name,
            d.provider,
            d.account,
            action,
            reason,
            **more,
            version=self.version,
            remote_name=self.dv.name,
            supersedes=self.supersedes,
        )


def versioned(
    d: DesiredFinetune,
    current: LockedFinetune | None,
    versions: Mapping[str, LockedVersion],
    observed: Observed,
    digests: Digests,
    caps: Capabilities,
    pending: Pending | None,
) -> list[Change]:
    """The first change is the finetune's own; any more are deletions of versions beyond
    `keep`."""
    local = {a.name: digests[a.path] for a in d.assets}
    version = content_version(d.fields, local)
    name = remote_name(d.name, version)
    if current is not None and (current.provider, current.account) != (d.provider, d.account):
        current = None  # moved to another account: versions there start afresh
        versions = {}
    now = version_of(current, d.fields) if current is not None else None
    now_name = (current.remote_name or current.name) if current is not None else None
    it = _Version(d, replace(d, name=name), version, now_name if now != version else None, local)
    if d.keep is not None and not caps.can_delete:
        return [
            it.change(
                Action.BLOCKED,
                f"keep: {d.keep} asks to delete old versions, but {d.provider} cannot delete a "
                "finetune: every version stays in the account. Remove keep (old versions are "
                "retired: counted, never reported as unmanaged)",
                desired=d,
            )
        ]
    if current is not None and now == version:
        # the current version: planned as an unversioned finetune under its remote name
        change = plan_one(
            replace(d, name=now_name or name), current, observed, digests, caps, pending
        )
        change = replace(change, name=d.name, version=version, remote_name=now_name)
        if now_name and now_name != d.name:  # the commands its messages name take the
            change = _named_logically(change, now_name, d.name)  # logical name
        by_id = {r.id: r for r in observed.in_account(d.provider, d.account)}
        return [change, *surplus(d, current, versions, by_id, caps, change)]
    change = _other(it, current, versions, observed, caps, pending)
    return [change, *superseded(d, current, versions, caps, change)]


def _other(
    it: _Version,
    current: LockedFinetune | None,
    versions: Mapping[str, LockedVersion],
    observed: Observed,
    caps: Capabilities,
    pending: Pending | None,
) -> Change:
    """Content other than the current version's: an earlier version made again current, one
    an interrupted apply made, or a new one."""
    d = it.d
    remotes = observed.in_account(d.provider, d.account)
    earlier = versions.get(it.version)
    held = next((r for r in remotes if earlier is not None and r.id == earlier.id), None)
    if earlier is not None and held is not None:
        return _switch_back(it, earlier, training=None if held.ready else held.status)
    squatter = next(
        (r for r in remotes if r.name == it.dv.name and r.id not in _ids(current, versions)), None
    )
    if squatter is not None:
        return _found_by_name(it, squatter, pending)
    return _new_version(it, current, earlier, caps)


def _switch_back(it: _Version, earlier: LockedVersion, training: str | None = None) -> Change:
    """An earlier version with this content is still in the account: it becomes current again,
    after its checks and the uploads it lacks, if any. `training`: its status while its
    provider still trains it (a candidate made current once trained)."""
    d = it.d
    missing = [a for a in d.assets if a.name not in earlier.assets]
    if earlier.state == "retired" and not missing:
        return it.change(
            Action.SWITCH,
            f"switching back to {earlier.remote_name}, the version made "
            f"{_when(earlier.created_at)}with this content: nothing is created or uploaded",
            remote_id=earlier.id,
            desired=it.dv,
            steps=promoting((), checked=False),
        )
    why = {
        "candidate": f"version {earlier.remote_name} is still training ({training})"
        if training
        else "an apply made this version but was cut short before it became current",
        "failed": "this version failed its checks at an earlier apply",
        "retired": "this earlier version lacks some uploads",
    }[earlier.state]
    todo = "uploading what it lacks, " if missing else ""
    gate = "checking it, " if d.checks else ""
    return it.change(
        Action.UPLOAD if missing else Action.SWITCH,
        f"{why}: {todo}{gate}then making it current",
        remote_id=earlier.id,
        desired=it.dv,
        assets=tuple(AssetChange(a.name, None, it.local[a.name]) for a in missing),
        steps=promoting(uploads(missing, it.local), bool(d.checks)),
    )


def _found_by_name(it: _Version, squatter: RemoteFinetune, pending: Pending | None) -> Change:
    """A finetune of the version's name that the lockfile does not know: ours if the journal
    says an apply was creating it and it has what was sent, else blocked."""
    d = it.d
    journal = adoption.journaled(pending, d)
    if (
        journal is not None
        and journal.op == "create"
        and not adoption.differences(it.dv, squatter, journal.since)
    ):
        # our own create of this version, cut off before the lock recorded it
        return it.change(
            Action.UPLOAD,
            f"an interrupted apply created version {it.dv.name} (the lockfile's journal says "
            "so, and it has what was sent): recording it, uploading its assets, then "
            "making it current",
            remote_id=squatter.id,
            desired=it.dv,
            assets=tuple(AssetChange(a.name, None, it.local[a.name]) for a in d.assets),
            steps=promoting(adopting(d.assets, it.local), bool(d.checks)),
        )
    return it.change(
        Action.BLOCKED,
        f"a finetune named {it.dv.name} (id {squatter.id}) is already in account {d.account} "
        "but not in the lockfile. Its name is this content's version, so an earlier apply "
        "most likely made it from these very files and its record was lost: "
        f"`reconciler import {d.name}` records it",
        remote_id=squatter.id,
        desired=it.dv,
    )


def _new_version(
    it: _Version,
    current: LockedFinetune | None,
    earlier: LockedVersion | None,
    caps: Capabilities,
) -> Change:
    """Content no version has (or had, and it is gone): a new version, checked, then current."""
    d, name = it.d, it.dv.name
    if current is None:
        reason = (
            "not in the account yet"
            if earlier is None
            else f"version {name} was made before but is gone from the account: made again"
        )
        fields = field_changes({}, d.fields)
        assets = tuple(AssetChange(a.name, None, it.local[a.name]) for a in d.assets)
    else:
        # what the user did not declare (a remote default the lock recorded, e.g. Cohere's
        # train_batch_size) is no change: compared at every depth, as an update compares
        fields = field_changes(project(dict(current.fields or {}), d.fields), dict(d.fields))
        assets = tuple(
            AssetChange(a.name, current.assets.get(a.name), it.local[a.name]) for a in d.assets
        )
        what = [f.field for f in fields] + [
            f"{a.name} content" for a in assets if a.before != a.after
        ]
        reason = (
            f"{', '.join(what) or 'content'} changed: new version {name} supersedes {it.supersedes}"
        )
    return it.change(
        Action.CREATE,
        reason,
        desired=it.dv,
        fields=fields,
        assets=assets,
        steps=promoting(creating(d.assets, it.local, caps), bool(d.checks)),
    )


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
