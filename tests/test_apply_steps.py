"""The step handlers' table and the one builder of what a create records (entry or version).

The handlers' behaviour is tested end to end (test_apply, test_crash_safety, test_versions_cli);
these pin what those cannot see: no step kind is left without a handler, and a staged change's
candidate version carries exactly what its entry would have."""

from __future__ import annotations

from reconciler.apply import steps
from reconciler.base.model import AssetDigest, DesiredFinetune, LockedFinetune, LockedVersion
from reconciler.plan.changes import Action, Change, StepKind

ADAPTER = AssetDigest("adapter_model.safetensors", 1234, "sha256:" + "ab" * 32)


def _change(version: str | None) -> Change:
    desired = DesiredFinetune(
        name="mistral-qa-0a1b2c3d" if version else "mistral-qa",
        provider="cloudflare",
        account="acct",
        model="@cf/mistral/mistral-7b-instruct-v0.2-lora",
        description=None,
        public=False,
        assets=(),
        prevent_destroy=True,
        versioning="content" if version else None,
    )
    return Change(
        "mistral-qa",
        "cloudflare",
        "acct",
        Action.CREATE,
        "new",
        desired=desired,
        version=version,
        remote_name=desired.name if version else None,
    )


def test_every_step_kind_has_its_handler() -> None:
    assert set(steps.HANDLERS) == set(StepKind)
    assert len(set(steps.HANDLERS.values())) == len(StepKind)


def test_an_unversioned_entry_has_no_version_fields() -> None:
    entry = steps.made(_change(None), "ft-1", "m", {"public": False}, {ADAPTER.name: ADAPTER})
    assert entry == LockedFinetune(
        name="mistral-qa",
        provider="cloudflare",
        account="acct",
        id="ft-1",
        model="m",
        assets={ADAPTER.name: ADAPTER},
        fields={"public": False},
        prevent_destroy=True,
    )


def test_a_candidate_version_carries_its_entry() -> None:
    change = _change("0a1b2c3d")
    fields = {"public": False}
    entry = steps.made(change, "ft-2", "m", fields, {ADAPTER.name: ADAPTER})
    made = steps.candidate(entry, change)
    assert entry.created_at is not None and entry.remote_name == "mistral-qa-0a1b2c3d"
    assert made == LockedVersion(
        version="0a1b2c3d",
        remote_name="mistral-qa-0a1b2c3d",
        provider="cloudflare",
        account="acct",
        id="ft-2",
        model="m",
        assets={ADAPTER.name: ADAPTER},
        fields={"public": False},
        created_at=entry.created_at,
        state="candidate",
        prevent_destroy=True,
    )
    # copies: the lock's records do not share the caller's mappings
    assert made.fields is not fields
