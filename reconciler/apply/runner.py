"""Carry out a Plan, step by step, recording each step in the lockfile before the next.

apply never re-diffs: it does what the plan says. Finetunes are independent of each other and
run concurrently in a bounded pool; one finetune's steps (create, then uploads) stay in order,
and so do its changes (a new version, then the retirement of the one it supersedes: create
before destroy), each only after the one before it succeeded.
A failed step stops that finetune only; the lock keeps everything that succeeded, so the next
plan shows exactly the work that remains. Each step kind has its handler in `steps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from reconciler.apply.outcomes import Events, Gate, Outcome, Report, Result, Stage
from reconciler.apply.steps import HANDLERS, At, Run
from reconciler.base.errors import EndpointError, OutcomeUnknown, ProviderError, ReconcilerError
from reconciler.base.model import AssetDigest, AssetFile
from reconciler.plan.planner import Action, Change, Plan
from reconciler.providers.base import Provider
from reconciler.state.lockfile import LockWriter

__all__ = ["Events", "Gate", "Outcome", "Report", "Result", "Stage", "run"]


def run(
    plan: Plan,
    providers: Mapping[str, Provider],
    writer: LockWriter,
    report: Report | None = None,
    parallelism: int = 4,
    gate: Gate | None = None,
    events: Events | None = None,
    stage: Stage | None = None,
) -> Result:
    """`gate`: runs the checks of a versioned change before its version is made current;
    None skips them (--skip-checks), and each outcome says so."""
    result = Result()

    def emit(outcome: Outcome) -> None:
        result.outcomes.append(outcome)  # list.append is atomic under the GIL
        if report is not None:
            report(outcome)

    groups = _by_finetune(plan.actionable)
    if not groups:
        return result

    def in_order(changes: list[Change]) -> None:
        for i, change in enumerate(changes):
            done = _one(
                change, providers, writer, plan, emit, gate, result, events=events, stage=stage
            )
            if not done:
                for later in changes[i + 1 :]:
                    emit(_waits(later, change))
                return

    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(groups)))) as pool:
        for phase in _phases(groups):
            futures = [pool.submit(in_order, changes) for changes in phase]
            for future in futures:
                future.result()
    return result


REMOVALS = frozenset({Action.DELETE, Action.FORGET})


def _phases(groups: list[list[Change]]) -> list[list[list[Change]]]:
    """The finetunes going away first, then the rest: what a removal frees (a serverless slot
    per base on Fireworks, an account's count) is free before another finetune asks for it.
    A finetune's own changes keep their order (a new version before the old one's delete)."""
    going = [g for g in groups if all(c.action in REMOVALS for c in g)]
    staying = [g for g in groups if not all(c.action in REMOVALS for c in g)]
    return [phase for phase in (going, staying) if phase]


def _by_finetune(changes: tuple[Change, ...]) -> list[list[Change]]:
    """The changes of each finetune, in the plan's order."""
    groups: dict[str, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.name, []).append(change)
    return list(groups.values())


def _waits(change: Change, failed: Change) -> Outcome:
    step = change.steps[0].kind.value if change.steps else change.action.value
    what = failed.remote_name or failed.name
    return Outcome(
        change.name,
        step,
        False,
        f"not started: it waits for the change of {what} before it, which did not finish; "
        "the next apply takes it up",
        skipped=True,
    )


def _one(
    change: Change,
    providers: Mapping[str, Provider],
    writer: LockWriter,
    plan: Plan,
    emit: Report,
    gate: Gate | None = None,
    result: Result | None = None,
    events: Events | None = None,
    stage: Stage | None = None,
) -> bool:
    """Carry out one change; whether every step of it succeeded in full."""
    held = _held(change)
    # the journal as the last apply left it: an upload it was sending when it stopped may have
    # arrived, and is looked for before this apply sends it again (its first step only)
    left = writer.journaled(change.name)
    fetched = _fetch(change, stage, emit)
    if fetched is None:
        return False
    run = Run(
        change=change,
        provider=providers.get(change.provider),
        writer=writer,
        plan=plan,
        emit=emit,
        gate=gate,
        result=result,
        events=events,
        fetched=fetched,
        left=left,
        remote_id=change.remote_id,
        held=held,
    )
    for index, step in enumerate(change.steps):
        at = At(index, step, step.kind.value + (f" {step.asset.name}" if step.asset else ""))
        if events is not None:
            if events.stopping():
                emit(_not_started(change, at))
                return False
            events.started(change.name, at.label, step.digest.size if step.digest else None)
        try:
            if not HANDLERS[step.kind](run, at):
                return False
        except ReconcilerError as exc:
            if _definite(exc):
                # refused: nothing was made, so the journal has nothing left to resolve (the
                # next plan must not take a finetune of this name for one this apply made)
                writer.settle(change.name)
            emit(Outcome(change.name, at.label, False, str(exc)))
            return False  # the next steps of this finetune depend on this one
        except OSError as exc:
            emit(Outcome(change.name, at.label, False, f"local file error: {exc}"))
            return False
    return not run.degraded


def _held(change: Change) -> dict[str, AssetDigest]:
    """Assets uploaded ahead of the create or update that names them: by an apply cut short
    (the plan carries their ids and has no upload for them); this apply adds its own."""
    uploading = {s.asset.name for s in change.steps if s.asset is not None}
    return {
        a.name: a.after
        for a in change.assets
        if a.after is not None and a.after.remote_id and a.name not in uploading
    }


def _not_started(change: Change, at: At) -> Outcome:
    left_over = len(change.steps) - at.index
    return Outcome(
        change.name,
        at.label,
        False,
        f"not started ({left_over} step{'s' if left_over != 1 else ''} left): "
        "the apply was interrupted",
        skipped=True,
    )


def _fetch(change: Change, stage: Stage | None, emit: Report) -> dict[str, AssetFile] | None:
    """A remote source's files (hf:, files:) fetched and verified before the change's first
    step: a file that is not what was planned creates nothing (Cloudflare cannot delete a
    finetune) and records nothing. None when one failed (the outcome says which)."""
    fetched: dict[str, AssetFile] = {}
    for s in change.steps:
        if stage is None or s.asset is None or s.asset.source is None:
            continue
        try:
            fetched[s.asset.name] = stage(change.name, s.asset, s.digest)
        except ReconcilerError as exc:
            emit(Outcome(change.name, f"fetch {s.asset.name}", False, str(exc)))
            return None
        except OSError as exc:
            emit(Outcome(change.name, f"fetch {s.asset.name}", False, f"local file error: {exc}"))
            return None
    return fetched


def _definite(exc: ReconcilerError) -> bool:
    """An answer that says the operation was not carried out (a 4xx, a 429 after retries, a
    refusal before sending). Not: a lost or unreadable answer, after which it may have been."""
    return isinstance(exc, ProviderError) and not isinstance(exc, OutcomeUnknown | EndpointError)
