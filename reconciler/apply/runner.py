"""Carry out a Plan, step by step, recording each step in the lockfile before the next.

apply never re-diffs: it does what the plan says. Finetunes are independent of each other and
run concurrently in a bounded pool; one finetune's steps (create, then uploads) stay in order.
A failed step stops that finetune only; the lock keeps everything that succeeded, so the next
plan shows exactly the work that remains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from reconciler.apply.checks import CheckResult
from reconciler.base import crashpoints
from reconciler.base.errors import EndpointError, OutcomeUnknown, ProviderError, ReconcilerError
from reconciler.base.model import AssetDigest, AssetFile, LockedFinetune, LockedVersion, Pending
from reconciler.base.units import human_size
from reconciler.plan import adoption
from reconciler.plan.planner import Change, Plan, Step, StepKind
from reconciler.plan.versions import version_of
from reconciler.providers.base import Progress, Provider
from reconciler.state.lockfile import LockWriter


@dataclass(frozen=True)
class Outcome:
    name: str
    step: str  # e.g. "create", "upload adapter_config.json", "forget"
    ok: bool
    detail: str
    skipped: bool = False  # not started: the apply was stopped before this step


Report = Callable[[Outcome], None]


class Events(Protocol):
    """What apply tells whoever watches it while it runs, from its worker threads: the CLI
    draws progress from these; the library draws nothing. Each step ends with its Outcome."""

    def started(self, name: str, step: str, size: int | None) -> None:
        """A step begins; `size`: the bytes an upload will send."""

    def sent(self, name: str, step: str, done: int, total: int) -> None:
        """An upload has sent `done` of `total` bytes (from 0 again if it is retried)."""

    def stopping(self) -> bool:
        """Asked before each step: True once no new step may start (Ctrl-C). The steps in
        flight finish and are recorded; each finetune's next step is reported skipped."""


# the promotion gate: runs a change's checks against the version it made (as `test` does)
Gate = Callable[[Change], Sequence[CheckResult]]


@dataclass
class Result:
    outcomes: list[Outcome] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)  # what the gate ran

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok and not o.skipped]

    @property
    def not_started(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.skipped]


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

    changes = plan.actionable
    if not changes:
        return result
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(changes)))) as pool:
        futures = [
            pool.submit(
                _one, c, providers, writer, plan, emit, gate, result, events=events, stage=stage
            )
            for c in changes
        ]
        for future in futures:
            future.result()
    return result


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
) -> None:
    provider = providers.get(change.provider)
    remote_id = change.remote_id
    # versioned: what this change makes is a version record until PROMOTE makes it current
    staged = any(s.kind is StepKind.PROMOTE for s in change.steps)
    version = change.version
    # uploaded ahead of the create or update that names them: by an apply cut short (the plan
    # carries their ids and has no upload for them), then by this one
    uploading = {s.asset.name for s in change.steps if s.asset is not None}
    held: dict[str, AssetDigest] = {
        a.name: a.after
        for a in change.assets
        if a.after is not None and a.after.remote_id and a.name not in uploading
    }
    journaled = False  # the previous write already journaled this step
    # the journal as the last apply left it: an upload it was sending when it stopped may have
    # arrived, and is looked for before this apply sends it again (its first step only)
    left = writer.journaled(change.name)
    fetched = _fetch(change, stage, emit)
    if fetched is None:
        return
    for index, step in enumerate(change.steps):
        label = step.kind.value + (f" {step.asset.name}" if step.asset else "")
        later = {s.kind for s in change.steps[index + 1 :]}
        if events is not None:
            if events.stopping():
                left_over = len(change.steps) - index
                emit(
                    Outcome(
                        change.name,
                        label,
                        False,
                        f"not started ({left_over} step{'s' if left_over != 1 else ''} left): "
                        "the apply was interrupted",
                        skipped=True,
                    )
                )
                return
            events.started(change.name, label, step.digest.size if step.digest else None)
        try:
            if step.kind is StepKind.FORGET:
                if version is not None and change.remote_id is not None:
                    writer.forget_version(change.name, version)  # one version of it
                else:
                    writer.forget(change.name)
                emit(Outcome(change.name, label, True, "removed from the lockfile"))
                continue
            assert provider is not None
            if step.kind is StepKind.DELETE:
                assert remote_id is not None
                writer.intend(change.name, Pending("delete", change.provider, change.account))
                provider.delete_finetune(change.account, remote_id)
                crashpoints.hit("delete.after")
                if version is not None and change.remote_id != _current_id(writer, change.name):
                    writer.forget_version(change.name, version)  # an older version of it
                    what = f"deleted version {change.remote_name} (id {remote_id})"
                else:
                    # the current one: its other versions, if any, are each a change of their
                    # own (or stay recorded, as a replacement's history)
                    writer.drop_current(change.name)
                    what = f"deleted (id {remote_id})"
                emit(Outcome(change.name, label, True, what))
                remote_id = None
                continue
            if step.kind is StepKind.PROMOTE:
                assert version is not None and change.desired is not None
                was = writer.current.finetunes.get(change.name)
                retired = version_of(was, change.desired.fields) if was is not None else None
                entry = writer.promote(change.name, version, retired)
                before = f" (was {was.remote_name or was.name})" if was is not None else ""
                emit(Outcome(change.name, label, True, f"current: {entry.remote_name}{before}"))
                continue
            if step.kind is StepKind.CHECK:
                assert version is not None
                if gate is None:
                    emit(Outcome(change.name, label, True, "skipped (--skip-checks)"))
                    continue
                found = list(gate(change))
                if result is not None:
                    result.checks.extend(found)
                failed = [r for r in found if not r.ok]
                if failed:
                    writer.mark_version(change.name, version, "failed")
                    keeps = _current_name(writer, change.name)
                    emit(
                        Outcome(
                            change.name,
                            label,
                            False,
                            f"{len(failed)} of {len(found)} checks failed against "
                            f"{change.remote_name}: it is recorded as a failed candidate, and "
                            + (f"{keeps} stays current" if keeps else "nothing is current yet"),
                        )
                    )
                    return
                emit(Outcome(change.name, label, True, f"{len(found)} passed"))
                continue
            assert change.desired is not None
            d = change.desired
            endpoint = plan.endpoints.get(change.provider, provider.endpoint)
            if step.kind is StepKind.CREATE:
                if not journaled:
                    writer.intend(change.name, _create_intent(change, held))
                crashpoints.hit("create.before")
                remote = provider.create_finetune(d, held)
                crashpoints.hit("create.after")
                unlike = adoption.unlike(d, remote, held)
                if unlike:
                    # found by name after a lost answer (names are unique, so ours was
                    # refused): someone else's, which nothing of ours may go into
                    writer.settle(change.name)
                    emit(
                        Outcome(
                            change.name,
                            label,
                            False,
                            f"the finetune named {d.name} (id {remote.id}) is not the one sent: "
                            f"{'; '.join(unlike)}. The name is taken, perhaps by someone else: "
                            "give this finetune another name, or, if you know it is yours, "
                            f"`reconciler import {d.name}`",
                        )
                    )
                    return
                remote_id = remote.id
                then = _intent(change, index + 1)
                if staged:
                    made = _version(change, remote.id, remote.model, remote.fields, held)
                    writer.add_version(change.name, made, endpoint, then=then)
                else:
                    entry = _entry(change, remote.id, remote.model, remote.fields, held)
                    writer.put(entry, endpoint, then=then)
                journaled = then is not None
                crashpoints.hit("create.locked")
                emit(Outcome(change.name, label, True, f"created (id {remote.id})"))
            elif step.kind is StepKind.ADOPT:
                assert remote_id is not None
                if staged:
                    made = _version(change, remote_id, d.model, d.fields, held)
                    writer.add_version(change.name, made, endpoint)
                else:
                    writer.put(_entry(change, remote_id, d.model, d.fields, held), endpoint)
                emit(Outcome(change.name, label, True, f"recorded (id {remote_id})"))
            elif step.kind is StepKind.UPDATE:
                assert remote_id is not None
                old = writer.current.finetunes[change.previous_name or change.name]
                assets = {**old.assets, **held}
                writer.intend(change.name, Pending("update", d.provider, d.account))
                remote = provider.update_finetune(d, remote_id, assets)
                entry = _entry(change, remote.id, remote.model, remote.fields, assets)
                writer.put(entry, endpoint, replaces=change.previous_name)
                emit(Outcome(change.name, label, True, f"updated (id {remote.id})"))
            elif step.kind is StepKind.UPLOAD:
                assert step.asset is not None
                inflight = _inflight(left, change, step) if index == 0 else None
                if not journaled:
                    since = inflight.since if inflight else None
                    writer.intend(change.name, _upload_intent(change, step, held, since))
                crashpoints.hit("upload.before")
                sent = _found(provider, change, step, inflight) or provider.upload_asset(
                    change.account,
                    remote_id,
                    fetched.get(step.asset.name, step.asset),
                    progress=_sending(events, change, label),
                )
                if step.digest is not None and step.digest.source:  # recorded beside it
                    sent = replace(sent, source=step.digest.source)
                crashpoints.hit("upload.after")
                if later & {StepKind.CREATE, StepKind.UPDATE}:
                    held[sent.name] = sent  # recorded with the create or update that uses it
                    if StepKind.CREATE in later:
                        # journaled at once, with the next step's intent: an apply cut short
                        # from here on leaves its id, and the next one reuses the upload
                        writer.intend(
                            change.name,
                            _intent(change, index + 1, held) or _create_intent(change, held),
                        )
                        journaled = True
                else:
                    then = _intent(change, index + 1)
                    if staged:
                        assert version is not None
                        writer.add_version_asset(change.name, version, sent, then=then)
                    else:
                        writer.add_asset(change.name, sent, then=then)
                    journaled = then is not None
                crashpoints.hit("upload.locked")
                if step.digest is not None and sent != step.digest:
                    emit(
                        Outcome(
                            change.name,
                            label,
                            False,
                            f"{step.asset.path} changed after the plan: uploaded {sent.short}… "
                            f"({human_size(sent.size)}) instead of the planned "
                            f"{step.digest.short}…; "
                            "the lockfile records what was uploaded",
                        )
                    )
                    return
                emit(
                    Outcome(
                        change.name,
                        label,
                        True,
                        f"uploaded ({human_size(sent.size)}, {sent.short}…)",
                    )
                )
        except ReconcilerError as exc:
            if _definite(exc):
                # refused: nothing was made, so the journal has nothing left to resolve (the
                # next plan must not take a finetune of this name for one this apply made)
                writer.settle(change.name)
            emit(Outcome(change.name, label, False, str(exc)))
            return  # the next steps of this finetune depend on this one
        except OSError as exc:
            emit(Outcome(change.name, label, False, f"local file error: {exc}"))
            return


def _sending(events: Events | None, change: Change, label: str) -> Progress | None:
    if events is None:
        return None
    return lambda done, total: events.sent(change.name, label, done, total)


# (finetune, asset, planned digest) -> the asset as a local file holding exactly those bytes
Stage = Callable[[str, AssetFile, "AssetDigest | None"], AssetFile]


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


def _upload_intent(
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


def _inflight(left: Pending | None, change: Change, step: Step) -> Pending | None:
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


def _found(
    provider: Provider, change: Change, step: Step, inflight: Pending | None
) -> AssetDigest | None:
    """What an upload cut short left at the provider, where the provider can look (Cohere:
    the dataset it made), so that it is not uploaded a second time."""
    find = getattr(provider, "find_upload", None)
    if inflight is None or step.asset is None or step.digest is None or not callable(find):
        return None
    found: AssetDigest | None = find(change.account, step.asset, step.digest, inflight.since)
    return found


def _create_intent(change: Change, held: Mapping[str, AssetDigest]) -> Pending:
    # `since`: a finetune of this name made before this moment is not the one we create
    return Pending(
        "create", change.provider, change.account, since=adoption.now(), assets=dict(held)
    )


def _intent(
    change: Change, index: int, held: Mapping[str, AssetDigest] | None = None
) -> Pending | None:
    """The journal entry of step `index`, when it is an upload that can be journaled together
    with the write that records the step before it."""
    if index < len(change.steps):
        step = change.steps[index]
        if step.kind is StepKind.UPLOAD and step.asset is not None:
            return _upload_intent(change, step, held)
    return None


def _entry(
    change: Change,
    remote_id: str,
    model: str,
    fields: Mapping[str, Any],
    assets: Mapping[str, AssetDigest],
) -> LockedFinetune:
    d = change.desired
    return LockedFinetune(
        name=change.name,
        provider=change.provider,
        account=change.account,
        id=remote_id,
        model=model,
        assets=dict(assets),
        fields=dict(fields),
        prevent_destroy=bool(d and d.prevent_destroy),
        remote_name=change.remote_name if change.version else None,
        version=change.version,
        created_at=adoption.now() if change.version else None,
    )


def _version(
    change: Change,
    remote_id: str,
    model: str,
    fields: Mapping[str, Any],
    assets: Mapping[str, AssetDigest],
) -> LockedVersion:
    """A version just made: a candidate until the PROMOTE step makes it current."""
    assert change.version is not None and change.desired is not None
    return LockedVersion(
        version=change.version,
        remote_name=change.desired.name,
        provider=change.provider,
        account=change.account,
        id=remote_id,
        model=model,
        assets=dict(assets),
        fields=dict(fields),
        created_at=adoption.now(),
        state="candidate",
        prevent_destroy=change.desired.prevent_destroy,
    )


def _current_id(writer: LockWriter, name: str) -> str | None:
    entry = writer.current.finetunes.get(name)
    return entry.id if entry is not None else None


def _current_name(writer: LockWriter, name: str) -> str | None:
    entry = writer.current.finetunes.get(name)
    return (entry.remote_name or entry.name) if entry is not None else None
