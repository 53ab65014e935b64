"""The version rules, in the pure plan: no network, no files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from reconciler.base.model import (
    EMPTY_RECORD,
    AssetDigest,
    AssetFile,
    Desired,
    DesiredFinetune,
    LockedFinetune,
    LockedVersion,
    Observed,
    Pending,
    Recorded,
    RemoteFinetune,
)
from reconciler.plan.planner import Action, StepKind, build
from reconciler.plan.versions import canonical, content_version, remote_name
from reconciler.providers.base import Capabilities

ACCOUNT = "0123456789abcdef0123456789abcdef"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
CF = Capabilities(False, False, False, False)
DELETES = Capabilities(True, True, True, True)
PATH = Path("/nowhere/adapter_model.safetensors")


def digest(n: int) -> AssetDigest:
    return AssetDigest("adapter_model.safetensors", 10 + n, "sha256:" + f"{n:x}" * 64)


def finetune(n: int = 1, **more: Any) -> tuple[DesiredFinetune, dict[Path, AssetDigest]]:
    d = DesiredFinetune(
        name="bot",
        provider="cloudflare",
        account=ACCOUNT,
        model=MODEL,
        description=None,
        public=False,
        assets=(AssetFile("adapter_model.safetensors", PATH),),
        fields={"model": MODEL, "description": None, "public": False},
        versioning="content",
        **more,
    )
    return d, {PATH: digest(n)}


def version(n: int) -> str:
    return content_version(
        {"model": MODEL, "description": None, "public": False},
        {"adapter_model.safetensors": digest(n)},
    )


def remote(n: int, rid: str, ready: bool = True) -> RemoteFinetune:
    name = remote_name("bot", version(n))
    return RemoteFinetune(
        "cloudflare",
        ACCOUNT,
        rid,
        name,
        MODEL,
        None,
        False,
        created_at="2026-12-01T10:00:00.000Z",
        fields={"model": MODEL, "description": None},
        ready=ready,
    )


def current(n: int, rid: str) -> LockedFinetune:
    return LockedFinetune(
        "bot",
        "cloudflare",
        ACCOUNT,
        rid,
        MODEL,
        {"adapter_model.safetensors": digest(n)},
        fields={"model": MODEL, "description": None, "public": False},
        remote_name=remote_name("bot", version(n)),
        version=version(n),
        created_at="2026-12-01T10:00:00.000Z",
    )


def earlier(n: int, rid: str, state: str = "retired", created: str = "2026-11-01") -> LockedVersion:
    return LockedVersion(
        version(n),
        remote_name("bot", version(n)),
        "cloudflare",
        ACCOUNT,
        rid,
        MODEL,
        {"adapter_model.safetensors": digest(n)},
        fields={"model": MODEL, "description": None, "public": False},
        created_at=created,
        state=state,
    )


def plan(
    d: DesiredFinetune,
    digests: dict[Path, AssetDigest],
    recorded: Recorded = EMPTY_RECORD,
    remotes: tuple[RemoteFinetune, ...] = (),
    caps: Capabilities = CF,
) -> Any:
    desired = Desired(Path("f.yaml"), (d,), {"cloudflare": (ACCOUNT,)})
    return build(
        desired,
        Observed({("cloudflare", ACCOUNT): remotes}),
        recorded,
        digests,
        {"cloudflare": caps},
        {"cloudflare": "sandbox"},
    )


def kinds(change: Any) -> list[str]:
    return [s.kind.value for s in change.steps]


def test_the_canonical_form_is_the_documented_one() -> None:
    text = canonical(
        {"public": False, "model": "m", "description": "é"}, {"b": "sha256:2", "a": "sha256:1"}
    )
    assert (
        text
        == (
            '{"assets":{"a":"sha256:1","b":"sha256:2"},'
            '"fields":{"description":"é","model":"m","public":false}}'
        ).encode()
    )
    assert (
        content_version({"model": "m"}, {})
        == hashlib.sha256(b'{"assets":{},"fields":{"model":"m"}}').hexdigest()[:8]
    )


def test_the_same_content_has_the_same_name_in_any_account() -> None:
    d, digests = finetune()
    (a,) = plan(d, digests).changes
    other = Desired(Path("f.yaml"), (d.__class__(**{**d.__dict__, "account": "f" * 32}),), {})
    assert a.remote_name == remote_name("bot", version(1))
    assert other  # the account is not part of the canonical form
    assert b"0123456789abcdef" not in canonical(d.fields, {"x": digest(1)})


def test_a_first_version_is_created_then_made_current() -> None:
    d, digests = finetune(checks=({"prompt": "hi"},))
    (c,) = plan(d, digests).changes
    assert c.action is Action.CREATE and c.name == "bot"
    assert c.desired.name == remote_name("bot", version(1))
    assert kinds(c) == ["create", "upload", "check", "promote"]
    assert c.supersedes is None


def test_new_content_is_a_new_version_never_blocked() -> None:
    d, digests = finetune(2)
    recorded = Recorded({"bot": current(1, "id-1")}, {"cloudflare": "sandbox"})
    (c,) = plan(d, digests, recorded, (remote(1, "id-1"),)).changes
    assert c.action is Action.CREATE
    assert c.supersedes == remote_name("bot", version(1))
    assert c.remote_name == remote_name("bot", version(2))
    assert "adapter_model.safetensors content changed: new version" in c.reason
    assert kinds(c) == ["create", "upload", "promote"]


def test_content_an_earlier_version_has_switches_back_sending_nothing() -> None:
    d, digests = finetune(1)
    recorded = Recorded(
        {"bot": current(2, "id-2")},
        {"cloudflare": "sandbox"},
        versions={"bot": {version(1): earlier(1, "id-1")}},
    )
    p = plan(d, digests, recorded, (remote(1, "id-1"), remote(2, "id-2")))
    (c,) = p.changes
    assert c.action is Action.SWITCH
    assert kinds(c) == ["promote"]
    assert c.remote_id == "id-1"
    assert p.retired == 1


def test_a_retired_version_that_vanished_is_made_again() -> None:
    d, digests = finetune(1)
    recorded = Recorded(
        {"bot": current(2, "id-2")},
        {"cloudflare": "sandbox"},
        versions={"bot": {version(1): earlier(1, "id-1")}},
    )
    (c,) = plan(d, digests, recorded, (remote(2, "id-2"),)).changes
    assert c.action is Action.CREATE
    assert kinds(c) == ["create", "upload", "promote"]


def test_a_candidate_cut_short_is_finished_not_made_again() -> None:
    d, digests = finetune(2, checks=({"prompt": "hi"},))
    half = LockedVersion(
        version(2),
        remote_name("bot", version(2)),
        "cloudflare",
        ACCOUNT,
        "id-2",
        MODEL,
        {},
        state="candidate",
    )
    recorded = Recorded(
        {"bot": current(1, "id-1")}, {"cloudflare": "sandbox"}, versions={"bot": {version(2): half}}
    )
    (c,) = plan(d, digests, recorded, (remote(1, "id-1"), remote(2, "id-2"))).changes
    assert c.action is Action.UPLOAD
    assert kinds(c) == ["upload", "check", "promote"]


def test_a_failed_candidate_is_checked_again() -> None:
    d, digests = finetune(2, checks=({"prompt": "hi"},))
    recorded = Recorded(
        {"bot": current(1, "id-1")},
        {"cloudflare": "sandbox"},
        versions={"bot": {version(2): earlier(2, "id-2", state="failed")}},
    )
    (c,) = plan(d, digests, recorded, (remote(1, "id-1"), remote(2, "id-2"))).changes
    assert c.action is Action.SWITCH
    assert kinds(c) == ["check", "promote"]
    assert "failed its checks" in c.reason


def test_an_unversioned_record_of_the_same_content_is_the_current_version() -> None:
    d, digests = finetune(1)
    legacy = LockedFinetune(
        "bot",
        "cloudflare",
        ACCOUNT,
        "id-0",
        MODEL,
        {"adapter_model.safetensors": digest(1)},
        fields={"model": MODEL, "description": None, "public": False},
    )
    plain = RemoteFinetune(
        "cloudflare",
        ACCOUNT,
        "id-0",
        "bot",
        MODEL,
        None,
        False,
        fields={"model": MODEL, "description": None},
    )
    recorded = Recorded({"bot": legacy}, {"cloudflare": "sandbox"})
    (c,) = plan(d, digests, recorded, (plain,)).changes
    assert c.action is Action.NOOP  # turning versioning on uploads nothing
    d2, digests2 = finetune(2)
    (c2,) = plan(d2, digests2, recorded, (plain,)).changes
    assert c2.action is Action.CREATE and c2.supersedes == "bot"


def test_a_version_name_taken_in_the_account_blocks_naming_import() -> None:
    d, digests = finetune(1)
    (c,) = plan(d, digests, EMPTY_RECORD, (remote(1, "id-x"),)).changes
    assert c.action is Action.BLOCKED
    assert "`reconciler import bot`" in c.reason


def test_an_interrupted_create_of_a_version_is_adopted() -> None:
    d, digests = finetune(1)
    pending = Pending("create", "cloudflare", ACCOUNT, since="2026-12-01T09:59:59.000Z")
    recorded = Recorded({}, {"cloudflare": "sandbox"}, pending={"bot": pending})
    (c,) = plan(d, digests, recorded, (remote(1, "id-1"),)).changes
    assert kinds(c) == ["adopt", "upload", "promote"]
    early = Pending("create", "cloudflare", ACCOUNT, since="2026-12-02T00:00:00.000Z")
    (b,) = plan(d, digests, Recorded({}, {}, pending={"bot": early}), (remote(1, "id-1"),)).changes
    assert b.action is Action.BLOCKED  # made before the create was sent: not ours


def test_keep_is_refused_where_nothing_can_be_deleted() -> None:
    d, digests = finetune(1, keep=2)
    (c,) = plan(d, digests).changes
    assert c.action is Action.BLOCKED and "cannot delete a finetune" in c.reason


def test_keep_deletes_beyond_the_most_recent_once_the_current_one_is_ready() -> None:
    d, digests = finetune(3, keep=2)
    versions = {
        version(1): earlier(1, "id-1", created="2026-10-01"),
        version(2): earlier(2, "id-2", created="2026-11-01"),
    }
    recorded = Recorded(
        {"bot": current(3, "id-3")}, {"cloudflare": "sandbox"}, versions={"bot": versions}
    )
    remotes = (remote(1, "id-1"), remote(2, "id-2"), remote(3, "id-3"))
    main, *doomed = plan(d, digests, recorded, remotes, DELETES).changes
    assert main.action is Action.NOOP
    assert [(c.action, c.remote_id, c.version) for c in doomed] == [
        (Action.DELETE, "id-1", version(1))
    ]
    # not while the current one is still training
    busy = (remote(1, "id-1"), remote(2, "id-2"), remote(3, "id-3", ready=False))
    assert len(plan(d, digests, recorded, busy, DELETES).changes) == 1


def test_keep_spares_prevent_destroy() -> None:
    d, digests = finetune(3, keep=1)
    guarded = LockedVersion(**{**earlier(1, "id-1").__dict__, "prevent_destroy": True})
    recorded = Recorded(
        {"bot": current(3, "id-3")},
        {"cloudflare": "sandbox"},
        versions={"bot": {version(1): guarded, version(2): earlier(2, "id-2")}},
    )
    remotes = (remote(1, "id-1"), remote(2, "id-2"), remote(3, "id-3"))
    _, *doomed = plan(d, digests, recorded, remotes, DELETES).changes
    assert [c.remote_id for c in doomed] == ["id-2"]


def test_retired_versions_are_not_unmanaged() -> None:
    d, digests = finetune(2)
    recorded = Recorded(
        {"bot": current(2, "id-2")},
        {"cloudflare": "sandbox"},
        versions={"bot": {version(1): earlier(1, "id-1")}},
    )
    p = plan(d, digests, recorded, (remote(1, "id-1"), remote(2, "id-2")))
    assert [c.action for c in p.changes] == [Action.NOOP]
    assert StepKind.PROMOTE.value == "promote"


def test_keep_deletes_a_failed_version_first_and_keeps_the_last_one_that_served() -> None:
    d, digests = finetune(3, keep=2)
    versions = {
        version(1): earlier(1, "id-1", created="2026-10-01"),
        version(2): earlier(2, "id-2", state="failed", created="2026-11-01"),
    }
    recorded = Recorded(
        {"bot": current(3, "id-3")}, {"cloudflare": "sandbox"}, versions={"bot": versions}
    )
    remotes = (remote(1, "id-1"), remote(2, "id-2"), remote(3, "id-3"))
    _, *doomed = plan(d, digests, recorded, remotes, DELETES).changes
    assert [c.remote_id for c in doomed] == ["id-2"]  # id-1 is the way back: kept


def test_pruning_a_removed_versioned_finetune_forgets_a_guarded_version() -> None:
    guarded = LockedVersion(**{**earlier(1, "id-1").__dict__, "prevent_destroy": True})
    recorded = Recorded(
        {"bot": current(3, "id-3")},
        {"cloudflare": "sandbox"},
        versions={"bot": {version(1): guarded, version(2): earlier(2, "id-2")}},
    )
    desired = Desired(Path("f.yaml"), (), {"cloudflare": (ACCOUNT,)})
    changes = build(
        desired,
        Observed(
            {("cloudflare", ACCOUNT): (remote(1, "id-1"), remote(2, "id-2"), remote(3, "id-3"))}
        ),
        recorded,
        {},
        {"cloudflare": DELETES},
        {"cloudflare": "sandbox"},
        prune=True,
    ).changes
    assert sorted((c.action, c.remote_id) for c in changes) == [
        (Action.DELETE, "id-2"),
        (Action.DELETE, "id-3"),
        (Action.FORGET, "id-1"),
    ]


def test_drift_tells_a_replaced_current_version_from_a_gone_one() -> None:
    from reconciler.plan.drift import DriftKind, detect

    recorded = Recorded({"bot": current(1, "id-1")}, {"cloudflare": "sandbox"})
    newcomer = remote(1, "id-other")  # the version's name, another id
    (found,) = detect(recorded, Observed({("cloudflare", ACCOUNT): (newcomer,)}), {})
    assert found.kind is DriftKind.REPLACED


def test_a_plan_file_holds_a_signed_url_without_its_signature(tmp_path: Path) -> None:
    from reconciler.base.model import AssetSource
    from reconciler.plan.codec import _source_to_data

    url = "https://bucket.example/a/adapter_model.safetensors?X-Amz-Signature=deadbeefsecret"
    asset = AssetFile(
        "adapter_model.safetensors", tmp_path / "x", source=AssetSource("url", url, sha256="s")
    )
    data = _source_to_data(asset)
    assert "deadbeefsecret" not in repr(data)
    assert data["source"]["location"] == "https://bucket.example/a/adapter_model.safetensors"
    assert data["source"]["location_sha256"] == hashlib.sha256(url.encode()).hexdigest()
