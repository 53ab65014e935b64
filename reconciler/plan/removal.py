"""What the lock records but the config no longer declares: deleted when pruning, else forgotten.

Pure, like plan.build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.base.model import Desired, LockedFinetune, LockedVersion, Observed, Recorded
from reconciler.plan.changes import Action, Change, Step, StepKind
from reconciler.providers.base import Capabilities


def undeclared(
    desired: Desired, recorded: Recorded, capabilities: Mapping[str, Capabilities], prune: bool
) -> list[Change]:
    """A finetune, or a versioned one's versions (some may be all that is left of it, as after
    a first version's checks failed), in the lock but gone from the config."""
    declared = {d.name for d in desired.finetunes}
    renamed_from = {d.previous_name for d in desired.finetunes if d.previous_name}
    changes: list[Change] = []
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
    return changes


def pruned_leftovers(
    desired: Desired,
    recorded: Recorded,
    observed: Observed,
    capabilities: Mapping[str, Capabilities],
    prune: bool,
) -> list[Change]:
    """With pruning on, each leftover still in an account the config manages is deleted, where
    its provider can delete (Cloudflare's stay, counted as kept)."""
    if not (prune or desired.prune):
        return []
    found: list[Change] = []
    for left in recorded.leftovers:
        caps = capabilities.get(left.provider)
        if caps is None or not caps.can_delete:
            continue
        if left.account not in desired.accounts.get(left.provider, ()):
            continue
        if not any(r.id == left.id for r in observed.in_account(left.provider, left.account)):
            continue  # gone already: nothing to send (the lock's leftover is harmless)
        found.append(
            Change(
                left.remote_name,
                left.provider,
                left.account,
                Action.DELETE,
                f"a leftover of {left.name} (made by reconciler, forgotten without pruning), "
                "and pruning is on",
                remote_id=left.id,
                steps=(Step(StepKind.DELETE_LEFTOVER),),
            )
        )
    return found


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
        return [_forget_versions(name, ordered, caps)]
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


def _forget_versions(name: str, ordered: list[LockedVersion], caps: Capabilities | None) -> Change:
    """Versions with no current one left, not deleted: one forget drops them all."""
    first = ordered[0]
    kept = ", ".join(v.remote_name for v in ordered)
    return Change(
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


def _forget_warning(locked: LockedFinetune, caps: Capabilities | None) -> str:
    if caps is not None and not caps.can_delete:
        return (
            f"{locked.provider} keeps finetune {locked.name} (id {locked.id}); reconciler will "
            "stop managing it, and it cannot delete it"
        )
    return f"finetune {locked.name} (id {locked.id}) is kept remotely; reconciler stops managing it"
