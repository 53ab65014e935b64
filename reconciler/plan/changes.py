"""What a plan is made of: actions, the steps that carry them out, and the plan itself.

Plain frozen records: plan.planner builds them, apply/ carries them out, render/ shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from reconciler.base.diff import FieldChange
from reconciler.base.errors import PlanError
from reconciler.base.model import AssetDigest, AssetFile, DesiredFinetune
from reconciler.base.suggest import did_you_mean


class Action(str, Enum):
    CREATE = "create"  # create the finetune, then upload every asset
    UPLOAD = "upload"  # upload the assets the lock lacks (e.g. after an interrupted apply)
    UPDATE = "update"  # change fields, assets or the name in place (a provider that can)
    REPLACE = "replace"  # delete, then create: what changed cannot change in place
    DELETE = "delete"  # removed from the config, and pruning was asked for
    NOOP = "noop"
    BLOCKED = "blocked"  # changed in a way the provider cannot apply
    FORGET = "forget"  # removed from the config: dropped from the lock, kept remotely
    UNMANAGED = "unmanaged"  # in the account, not in the config or lock: reported, never touched
    SWITCH = "switch"  # versioned: make a version already made current again; nothing sent

    @property
    def symbol(self) -> str:
        return SYMBOLS[self]

    @property
    def changes_state(self) -> bool:
        """Whether apply has work to do for it (remote calls or lock writes)."""
        return self in (
            Action.CREATE,
            Action.UPLOAD,
            Action.UPDATE,
            Action.REPLACE,
            Action.DELETE,
            Action.FORGET,
            Action.SWITCH,
        )


SYMBOLS = {
    Action.CREATE: "+",
    Action.UPLOAD: "~",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
    Action.NOOP: " ",
    Action.BLOCKED: "!",
    Action.FORGET: ".",
    Action.UNMANAGED: "?",
    Action.SWITCH: "<",
}


class StepKind(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ADOPT = "adopt"  # record a finetune an interrupted apply created (no remote call)
    UPLOAD = "upload"
    FORGET = "forget"
    CHECK = "check"  # versioned: run the finetune's checks against the new version (the gate)
    PROMOTE = "promote"  # versioned: make the version current (lock only; no remote call)
    VALIDATE = (
        "validate"  # have the provider check the uploaded files (Capabilities.validates_uploads)
    )
    SERVE = "serve"  # load what was made where it serves, and wait for it (Capabilities.serves)
    # delete a leftover (what an apply forgot and left in its account): pruning, where the
    # provider can delete; the lockfile's leftover goes with it
    DELETE_LEFTOVER = "delete_leftover"


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
    previous_name: str | None = None  # an update that renames: the lock entry's old name
    # versioned: the version this change is about, its name at the provider, and the remote
    # name of the version it takes over from as current (None: none was current)
    version: str | None = None
    remote_name: str | None = None
    supersedes: str | None = None


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    # provider -> endpoint the plan was made against, what the lock records after apply
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # about the whole run, not one finetune (e.g. a catalogue read from the bundled snapshot)
    warnings: tuple[str, ...] = ()
    retired: int = 0  # earlier versions of versioned finetunes, kept remotely: counted only
    leftovers: int = 0  # what an apply forgot and left in the account (the lockfile's leftovers)

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


def select(plan: Plan, targets: tuple[str, ...]) -> Plan:
    """Only the changes of the named finetunes (by name or provider.name address)."""
    if not targets:
        return plan
    known = {c.name for c in plan.changes} | {f"{c.provider}.{c.name}" for c in plan.changes}
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise PlanError(
            f"--target {', '.join(unknown)}: no such finetune in the config, the lockfile or the "
            "account" + did_you_mean(unknown[0], sorted({c.name for c in plan.changes}))
        )
    wanted = set(targets)
    return Plan(
        changes=tuple(
            c for c in plan.changes if c.name in wanted or f"{c.provider}.{c.name}" in wanted
        ),
        endpoints=plan.endpoints,
        warnings=plan.warnings,
        retired=plan.retired,
        leftovers=plan.leftovers,
    )
