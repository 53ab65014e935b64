"""One handler per step kind, over a Run: the change being carried out and what its steps hand
on to each other.

A handler carries out one step and records it in the lockfile before it returns: True lets the
change's next step start, False stops the change (its outcome says why). Errors it raises are
the runner's to report. HANDLERS maps each StepKind to its handler, so a kind added for a new
provider slots in beside the others without touching them.

Crash points (base/crashpoints) mark where the crash harness kills the process: their names
and places are part of what it tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from reconciler.apply.journal import create_intent, found, inflight, next_intent, upload_intent
from reconciler.apply.outcomes import Events, Gate, Outcome, Report, Result
from reconciler.apply.promotion import make_current
from reconciler.base import crashpoints
from reconciler.base.errors import PartialApply, ProviderError
from reconciler.base.model import (
    AssetDigest,
    AssetFile,
    DesiredFinetune,
    LockedFinetune,
    LockedVersion,
    Pending,
    RemoteFinetune,
)
from reconciler.base.units import human_size
from reconciler.plan import adoption
from reconciler.plan.planner import Change, Plan, Step, StepKind
from reconciler.providers.base import Progress, Provider
from reconciler.state.lockfile import LockWriter


@dataclass(frozen=True)
class At:
    """The step being carried out: its place among the change's steps, and its outcomes' label
    (e.g. "create", "upload adapter_config.json")."""

    index: int
    step: Step
    label: str


@dataclass
class Run:
    """One change being carried out. `remote_id`: the finetune's id, once made (None once
    deleted); `held`: assets uploaded ahead of the create or update that names them, which
    records them; `journaled`: the last lock write already journaled the next step."""

    change: Change
    provider: Provider | None
    writer: LockWriter
    plan: Plan
    emit: Report
    gate: Gate | None
    result: Result | None
    events: Events | None
    fetched: Mapping[str, AssetFile]  # remote sources' files, fetched before the first step
    left: Pending | None  # the journal entry as the last apply left it
    remote_id: str | None
    held: dict[str, AssetDigest]
    journaled: bool = False
    # a step was done in part (PartialApply): the change goes on with what was made, and fails
    # at the end, so that what depends on it waits for the next apply
    degraded: bool = False

    @property
    def staged(self) -> bool:
        """Versioned: what this change makes is a version record until PROMOTE makes it
        current."""
        return any(s.kind is StepKind.PROMOTE for s in self.change.steps)

    @property
    def api(self) -> Provider:
        assert self.provider is not None
        return self.provider

    @property
    def desired(self) -> DesiredFinetune:
        assert self.change.desired is not None
        return self.change.desired

    def endpoint(self) -> str:
        return self.plan.endpoints.get(self.change.provider, self.api.endpoint)

    def tell(self, at: At, ok: bool, detail: str) -> bool:
        """Emit the step's outcome; returns `ok`: whether the change goes on."""
        self.emit(Outcome(self.change.name, at.label, ok, detail))
        return ok

    def partly(self, at: At, detail: str) -> bool:
        """A step done in part: said as failed (the apply exits 1), and the change goes on."""
        self.degraded = True
        self.tell(at, False, detail)
        return True

    def record(
        self,
        remote_id: str,
        model: str,
        fields: Mapping[str, Any],
        assets: Mapping[str, AssetDigest],
        then: Pending | None = None,
    ) -> None:
        """What a create or an adoption made: a candidate version of a staged change, else the
        finetune's entry."""
        entry = made(self.change, remote_id, model, fields, assets)
        if self.staged:
            self.writer.add_version(
                self.change.name, candidate(entry, self.change), self.endpoint(), then=then
            )
        else:
            self.writer.put(entry, self.endpoint(), then=then)


Handler = Callable[[Run, At], bool]


def forget(run: Run, at: At) -> bool:
    change = run.change
    # what reconciler made and leaves in the account stays known as ours: a leftover, which
    # drift and plan do not call unmanaged (`reconciler forget NAME` lets go of it)
    if change.version is not None and change.remote_id is not None:
        run.writer.forget_version(change.name, change.version, leftover=True)  # one version
    else:
        run.writer.forget(change.name, leftover=True)
    return run.tell(at, True, "no longer managed; kept in the account as a leftover")


def delete_leftover(run: Run, at: At) -> bool:
    """A leftover deleted (pruning): its remote finetune, then its record among the lock's
    leftovers. Cut off between the two, the next plan finds it gone and sends nothing."""
    change = run.change
    assert change.remote_id is not None
    run.api.delete_finetune(change.account, change.remote_id)
    run.writer.forget_leftover((change.provider, change.account, change.remote_id))
    run.remote_id = None
    return run.tell(at, True, f"deleted the leftover (id {change.remote_id})")


def delete(run: Run, at: At) -> bool:
    change, provider = run.change, run.api
    assert run.remote_id is not None
    run.writer.intend(change.name, Pending("delete", change.provider, change.account))
    provider.delete_finetune(change.account, run.remote_id)
    crashpoints.hit("delete.after")
    if change.version is not None and change.remote_id != _current_id(run.writer, change.name):
        run.writer.forget_version(change.name, change.version)  # an older version of it
        what = f"deleted version {change.remote_name} (id {run.remote_id})"
    else:
        # the current one: its other versions, if any, are each a change of their own (or
        # stay recorded, as a replacement's history)
        run.writer.drop_current(change.name)
        what = f"deleted (id {run.remote_id})"
    run.tell(at, True, what)
    run.remote_id = None
    return True


def promote(run: Run, at: At) -> bool:
    assert run.provider is not None  # a step for a provider the config names, as all but FORGET
    change = run.change
    remote = _trained_remotely(run)
    if remote is not None and remote.failed:
        return run.tell(at, False, f"{change.remote_name} failed to train ({remote.status})")
    if remote is not None and not remote.ready:
        # made current only once trained, so that `output` never names a model still training
        return run.tell(
            at,
            True,
            f"not yet current: {change.remote_name} is {remote.status or 'training'}; it "
            "becomes current once trained (at the end of apply --wait, else at the next apply)",
        )
    return run.tell(at, True, make_current(run.writer, change))


def _trained_remotely(run: Run) -> RemoteFinetune | None:
    """The version as its provider has it, where training is asynchronous (else None)."""
    if not run.api.capabilities.trains_async or run.change.version is None:
        return None
    held = run.writer.current.versions.get(run.change.name, {}).get(run.change.version)
    if held is None:
        return None
    return run.api.get_finetune(held.account, held.id)


def check(run: Run, at: At) -> bool:
    """The promotion gate: a version whose checks fail is recorded as failed, never current."""
    assert run.provider is not None  # a step for a provider the config names, as all but FORGET
    change = run.change
    assert change.version is not None
    if run.gate is None:
        return run.tell(at, True, "skipped (--skip-checks)")
    results = list(run.gate(change))
    if run.result is not None:
        run.result.checks.extend(results)
    failed = [r for r in results if not r.ok]
    if not failed:
        return run.tell(at, True, f"{len(results)} passed")
    run.writer.mark_version(change.name, change.version, "failed")
    keeps = _current_name(run.writer, change.name)
    return run.tell(
        at,
        False,
        f"{len(failed)} of {len(results)} checks failed against "
        f"{change.remote_name}: it is recorded as a failed candidate, and "
        + (f"{keeps} stays current" if keeps else "nothing is current yet"),
    )


def create(run: Run, at: At) -> bool:
    change, provider, d = run.change, run.api, run.desired
    if not run.journaled:
        run.writer.intend(change.name, create_intent(change, run.held))
    crashpoints.hit("create.before")
    try:
        remote = provider.create_finetune(_fetched(run), run.held)
        partial = None
    except PartialApply as exc:
        remote, partial = exc.made, str(exc)
    crashpoints.hit("create.after")
    unlike = [] if partial else adoption.unlike(d, remote, run.held)
    if unlike:
        # found by name after a lost answer (names are unique, so ours was refused): someone
        # else's, which nothing of ours may go into
        run.writer.settle(change.name)
        return run.tell(
            at,
            False,
            f"the finetune named {d.name} (id {remote.id}) is not the one sent: "
            f"{'; '.join(unlike)}. The name is taken, perhaps by someone else: "
            "give this finetune another name, or, if you know it is yours, "
            f"`reconciler import {d.name}`",
        )
    run.remote_id = remote.id
    then = next_intent(change, at.index + 1)
    run.record(remote.id, remote.model, remote.fields, run.held, then=then)
    run.journaled = then is not None
    crashpoints.hit("create.locked")
    if partial:
        return run.partly(at, f"created (id {remote.id}) in part: {partial}")
    return run.tell(at, True, f"created (id {remote.id})")


def _fetched(run: Run) -> DesiredFinetune:
    """The finetune with its remote sources' files as fetched (and verified) before the first
    step: local files a create may read (Fireworks names the adapter's rank in it)."""
    d = run.desired
    if not run.fetched:
        return d
    return replace(d, assets=tuple(run.fetched.get(a.name, a) for a in d.assets))


def adopt(run: Run, at: At) -> bool:
    """Record a finetune an interrupted apply created (no remote call)."""
    d = run.desired
    assert run.remote_id is not None
    run.record(run.remote_id, d.model, d.fields, run.held)
    return run.tell(at, True, f"recorded (id {run.remote_id})")


def update(run: Run, at: At) -> bool:
    change, provider, d = run.change, run.api, run.desired
    assert run.remote_id is not None
    old = run.writer.current.finetunes[change.previous_name or change.name]
    assets = {**old.assets, **run.held}
    run.writer.intend(change.name, Pending("update", d.provider, d.account))
    try:
        remote, partial = provider.update_finetune(d, run.remote_id, assets), None
    except PartialApply as exc:
        remote, partial = exc.made, str(exc)
    entry = made(change, remote.id, remote.model, remote.fields, assets)
    run.writer.put(entry, run.endpoint(), replaces=change.previous_name)
    if partial:
        return run.partly(at, f"updated (id {remote.id}) in part: {partial}")
    return run.tell(at, True, f"updated (id {remote.id})")


def upload(run: Run, at: At) -> bool:
    change, provider, step = run.change, run.api, at.step
    assert change.desired is not None and step.asset is not None
    cut = inflight(run.left, change, step) if at.index == 0 else None
    if not run.journaled:
        since = cut.since if cut else None
        run.writer.intend(change.name, upload_intent(change, step, run.held, since))
    crashpoints.hit("upload.before")
    sent = found(provider, change, step, cut) or provider.upload_asset(
        change.account,
        run.remote_id,
        run.fetched.get(step.asset.name, step.asset),
        progress=_sending(run.events, change, at.label),
    )
    if step.digest is not None and step.digest.source:  # recorded beside it
        sent = replace(sent, source=step.digest.source)
    crashpoints.hit("upload.after")
    _keep(run, at, sent)
    crashpoints.hit("upload.locked")
    if step.digest is not None and sent != step.digest:
        return run.tell(
            at,
            False,
            f"{step.asset.path} changed after the plan: uploaded {sent.short}… "
            f"({human_size(sent.size)}) instead of the planned {step.digest.short}…; "
            "the lockfile records what was uploaded",
        )
    return run.tell(at, True, f"uploaded ({human_size(sent.size)}, {sent.short}…)")


def _keep(run: Run, at: At, sent: AssetDigest) -> None:
    """An upload recorded: held for the create or update after it, which records it, or else
    recorded in the finetune's entry (or its version's) at once."""
    change = run.change
    later = {s.kind for s in change.steps[at.index + 1 :]}
    if later & {StepKind.CREATE, StepKind.UPDATE}:
        run.held[sent.name] = sent
        if StepKind.CREATE in later:
            # journaled at once, with the next step's intent: an apply cut short from here
            # on leaves its id, and the next one reuses the upload
            run.writer.intend(
                change.name,
                next_intent(change, at.index + 1, run.held) or create_intent(change, run.held),
            )
            run.journaled = True
        return
    then = next_intent(change, at.index + 1)
    if run.staged:
        assert change.version is not None
        run.writer.add_version_asset(change.name, change.version, sent, then=then)
    else:
        run.writer.add_asset(change.name, sent, then=then)
    run.journaled = then is not None


@runtime_checkable
class Finishing(Protocol):
    """A provider whose create is finished by steps of their own (Capabilities
    validates_uploads and serves): each returns what it did, for the step's outcome."""

    def validate_finetune(self, desired: DesiredFinetune, remote_id: str) -> str:
        """Have the provider check the uploaded files, and wait until it has (Fireworks:
        validateUpload until the model is READY)."""

    def serve_finetune(self, desired: DesiredFinetune, remote_id: str) -> str:
        """Load it where the config says it serves and wait until it does; the last step of a
        create (a provider may mark the finetune finished here)."""


def _finishing(run: Run, at: At, kind: str) -> bool:
    """A step that finishes a create (no lock write: a create cut short before its finish is
    made again, and the provider takes over what it left): `kind` is the crash points' name
    and which Finishing method is called."""
    provider = run.api
    if not isinstance(provider, Finishing):
        raise ProviderError(f"{provider.name} has no {at.step.kind.value} step")
    assert run.remote_id is not None
    step = {"validate": provider.validate_finetune, "serve": provider.serve_finetune}[kind]
    crashpoints.hit(f"{kind}.before")
    said = step(run.desired, run.remote_id)
    crashpoints.hit(f"{kind}.after")
    return run.tell(at, True, said)


def validate(run: Run, at: At) -> bool:
    """The provider's check of what was uploaded."""
    return _finishing(run, at, "validate")


def serve(run: Run, at: At) -> bool:
    """Load what was made where the config says it serves, and wait until it does."""
    return _finishing(run, at, "serve")


HANDLERS: dict[StepKind, Handler] = {
    StepKind.FORGET: forget,
    StepKind.DELETE: delete,
    StepKind.DELETE_LEFTOVER: delete_leftover,
    StepKind.PROMOTE: promote,
    StepKind.CHECK: check,
    StepKind.CREATE: create,
    StepKind.ADOPT: adopt,
    StepKind.UPDATE: update,
    StepKind.UPLOAD: upload,
    StepKind.VALIDATE: validate,
    StepKind.SERVE: serve,
}


def made(
    change: Change,
    remote_id: str,
    model: str,
    fields: Mapping[str, Any],
    assets: Mapping[str, AssetDigest],
) -> LockedFinetune:
    """The lock entry of what a change made or adopted (for a staged change, the content of
    its candidate version)."""
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


def candidate(entry: LockedFinetune, change: Change) -> LockedVersion:
    """A version just made: a candidate until the PROMOTE step makes it current."""
    assert entry.version is not None and change.desired is not None
    return LockedVersion(
        version=entry.version,
        remote_name=change.desired.name,
        provider=entry.provider,
        account=entry.account,
        id=entry.id,
        model=entry.model,
        assets=entry.assets,
        fields=entry.fields,
        created_at=entry.created_at,
        state="candidate",
        prevent_destroy=entry.prevent_destroy,
    )


def _sending(events: Events | None, change: Change, label: str) -> Progress | None:
    if events is None:
        return None
    return lambda done, total: events.sent(change.name, label, done, total)


def _current_id(writer: LockWriter, name: str) -> str | None:
    entry = writer.current.finetunes.get(name)
    return entry.id if entry is not None else None


def _current_name(writer: LockWriter, name: str) -> str | None:
    entry = writer.current.finetunes.get(name)
    return (entry.remote_name or entry.name) if entry is not None else None
