"""Making a version current: in its PROMOTE step, or, where training is asynchronous, once it
has trained (apply --wait), so that `output` never names a model still training."""

from __future__ import annotations

from pathlib import Path

from reconciler.apply.training import Finished
from reconciler.plan.changes import Change, Plan
from reconciler.plan.versions import version_of
from reconciler.state.lockfile import LockWriter, read_lock


def make_current(writer: LockWriter, change: Change) -> str:
    """Promote the change's version in the lock; says what became current."""
    assert change.version is not None and change.desired is not None
    was = writer.current.finetunes.get(change.name)
    retired = version_of(was, change.desired.fields) if was is not None else None
    entry = writer.promote(change.name, change.version, retired)
    before = f" (was {was.remote_name or was.name})" if was is not None else ""
    return f"current: {entry.remote_name}{before}"


def promote_trained(plan: Plan, finished: list[Finished], lock_path: Path) -> list[str]:
    """Make current each version that finished training ready while still a candidate; says
    what became current, one line per finetune."""
    ready = {f.name for f in finished if f.ok}
    writer: LockWriter | None = None
    told: list[str] = []
    for c in plan.changes:
        if c.name not in ready or c.version is None or c.desired is None:
            continue
        writer = writer or LockWriter(lock_path, read_lock(lock_path))
        held = writer.current.versions.get(c.name, {}).get(c.version)
        if held is not None and held.state == "candidate":
            told.append(f"{c.name}: {make_current(writer, c)}")
    return told
