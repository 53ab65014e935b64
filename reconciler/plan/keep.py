"""keep: N on a versioned finetune: which earlier versions are deleted. Pure, like plan.build."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.base.model import DesiredFinetune, LockedFinetune, LockedVersion, RemoteFinetune
from reconciler.plan.changes import Action, Change, Step, StepKind
from reconciler.plan.versions import version_of
from reconciler.providers.base import Capabilities


def surplus(
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
    if d.keep is None or not caps.can_delete or not _settled(change, caps):
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
            f"{v.remote_name}: a version of {d.name} older than the {d.keep} kept (keep: {d.keep})"
            if v.state == "retired"
            else f"{v.remote_name}: a version of {d.name} whose checks failed (keep: {d.keep} "
            "keeps only versions that served)",
            remote_id=v.id,
            steps=(Step(StepKind.DELETE),),
            version=v.version,
            remote_name=v.remote_name,
        )
        for v in doomed
    ]


def _settled(change: Change, caps: Capabilities) -> bool:
    """Whether the current version is ready once `change` is done: at once where nothing is
    changing, and, where nothing trains, after an update the apply makes first (apply runs a
    finetune's changes in order, each after the one before it succeeded)."""
    return change.action is Action.NOOP or (
        not caps.trains_async and change.action is Action.UPDATE
    )


def superseded(
    d: DesiredFinetune,
    current: LockedFinetune | None,
    versions: Mapping[str, LockedVersion],
    caps: Capabilities,
    change: Change,
) -> list[Change]:
    """keep: N where nothing trains: a version made current (a new one, or a candidate an
    interrupted apply made) retires the current one, and the versions beyond the N kept are
    deleted in the same apply, after it (create before destroy: apply runs them only once the
    new version is current)."""
    if d.keep is None or not caps.can_delete or caps.trains_async or current is None:
        return []
    if change.action not in (Action.CREATE, Action.SWITCH, Action.UPLOAD):
        return []  # no other version becomes current: nothing is superseded
    retiring = LockedVersion(
        version=version_of(current, d.fields),
        remote_name=current.remote_name or current.name,
        provider=current.provider,
        account=current.account,
        id=current.id,
        model=current.model,
        assets=current.assets,
        created_at="~",  # sorts after every date: it was current until now, the most recent
        prevent_destroy=current.prevent_destroy,
    )
    served = sorted(
        (v for v in [*versions.values(), retiring] if v.state == "retired"),
        key=lambda v: (v.created_at or "", v.version),
        reverse=True,
    )
    doomed = [v for v in served[max(d.keep - 1, 0) :] if not v.prevent_destroy]
    return [
        Change(
            d.name,
            d.provider,
            d.account,
            Action.DELETE,
            f"{v.remote_name}, superseded by {change.remote_name}: a version beyond the "
            f"{d.keep} kept "
            f"(keep: {d.keep}), deleted once the new one is current",
            remote_id=v.id,
            steps=(Step(StepKind.DELETE),),
            version=v.version,
            remote_name=v.remote_name,
        )
        for v in doomed
    ]
