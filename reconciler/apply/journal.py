"""The journal entries apply writes before it sends a create or an upload, and what it makes of
the entry the last apply left: the next plan (or this apply) resolves an operation that may have
happened without its answer arriving."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.base.model import AssetDigest, Pending
from reconciler.plan import adoption
from reconciler.plan.planner import Change, Step, StepKind
from reconciler.providers.base import Provider


def upload_intent(
    change: Change,
    step: Step,
    held: Mapping[str, AssetDigest] | None = None,
    since: str | None = None,
) -> Pending:
    assert step.asset is not None
    return Pending(
        "upload",
        change.provider,
        change.account,
        step.asset.name,
        since=since or adoption.now(),
        assets=dict(held or {}),
        sha256=step.digest.sha256 if step.digest else None,
    )


def inflight(left: Pending | None, change: Change, step: Step) -> Pending | None:
    """The journal entry of this very upload (same asset, same content), if the last apply
    stopped while sending it."""
    if (
        left is None
        or left.op != "upload"
        or step.asset is None
        or left.asset != step.asset.name
        or (left.provider, left.account) != (change.provider, change.account)
        or not left.since
        or step.digest is None
        or left.sha256 != step.digest.sha256
    ):
        return None
    return left


def found(
    provider: Provider, change: Change, step: Step, inflight: Pending | None
) -> AssetDigest | None:
    """What an upload cut short left at the provider, where the provider can look (Cohere:
    the dataset it made), so that it is not uploaded a second time."""
    find = getattr(provider, "find_upload", None)
    if inflight is None or step.asset is None or step.digest is None or not callable(find):
        return None
    there: AssetDigest | None = find(change.account, step.asset, step.digest, inflight.since)
    return there


def create_intent(change: Change, held: Mapping[str, AssetDigest]) -> Pending:
    # `since`: a finetune of this name made before this moment is not the one we create
    return Pending(
        "create", change.provider, change.account, since=adoption.now(), assets=dict(held)
    )


def next_intent(
    change: Change, index: int, held: Mapping[str, AssetDigest] | None = None
) -> Pending | None:
    """The journal entry of step `index`, when it is an upload that can be journaled together
    with the write that records the step before it."""
    if index < len(change.steps):
        step = change.steps[index]
        if step.kind is StepKind.UPLOAD and step.asset is not None:
            return upload_intent(change, step, held)
    return None
