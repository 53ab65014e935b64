"""plan.build is pure: every rule is checked here from plain records, without a network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.base.errors import PlanError
from reconciler.base.model import (
    AssetDigest,
    AssetFile,
    Desired,
    DesiredFinetune,
    LockedFinetune,
    Observed,
    Recorded,
    RemoteFinetune,
)
from reconciler.plan.planner import Action, Plan, StepKind, build
from reconciler.providers.cloudflare.api import CloudflareProvider
from reconciler.render import text

ACCOUNT = "0123456789abcdef0123456789abcdef"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
CAPS = {"cloudflare": CloudflareProvider.capabilities}
ENDPOINTS = {"cloudflare": "sandbox"}
GOLDEN = Path(__file__).parent / "golden"
FILES = ("adapter_config.json", "adapter_model.safetensors")


def digest(file: str, content: str, size: int = 100) -> AssetDigest:
    return AssetDigest(file, size, "sha256:" + (content * 64)[:64])


def desired(
    name: str, description: str | None = "d", content: str = "a"
) -> tuple[DesiredFinetune, dict]:
    assets = tuple(AssetFile(f, Path(f"/p/{name}/{f}")) for f in FILES)
    d = DesiredFinetune(
        name, "cloudflare", ACCOUNT, MODEL, description, False, assets, fields=fields(description)
    )
    return d, {a.path: digest(a.name, content) for a in assets}


def locked(
    name: str, id_: str, content: str = "a", files: tuple[str, ...] = FILES
) -> LockedFinetune:
    return LockedFinetune(
        name, "cloudflare", ACCOUNT, id_, MODEL, {f: digest(f, content) for f in files}
    )


def fields(description: str | None, public: bool = False) -> dict[str, object]:
    return {"model": MODEL, "description": description, "public": public}


def remote(name: str, id_: str, description: str | None = "d") -> RemoteFinetune:
    return RemoteFinetune(
        "cloudflare", ACCOUNT, id_, name, MODEL, description, False, fields=fields(description)
    )


def plan_of(
    ds: list[tuple[DesiredFinetune, dict]], remotes=(), locks=(), endpoints=ENDPOINTS
) -> Plan:
    digests = {p: d for _, ds_ in ds for p, d in ds_.items()}
    return build(
        Desired(Path("/p/finetunes.yaml"), tuple(d for d, _ in ds), {"cloudflare": (ACCOUNT,)}),
        Observed({("cloudflare", ACCOUNT): tuple(remotes)}),
        Recorded({lk.name: lk for lk in locks}, {"cloudflare": "sandbox"} if locks else {}),
        digests,
        CAPS,
        endpoints,
    )


def only(plan: Plan):
    (change,) = plan.changes
    return change


def test_new_finetune_is_created_then_both_assets_uploaded() -> None:
    c = only(plan_of([desired("new")]))
    assert c.action is Action.CREATE
    assert [s.kind for s in c.steps] == [StepKind.CREATE, StepKind.UPLOAD, StepKind.UPLOAD]
    assert [s.asset.name for s in c.steps[1:]] == list(FILES)
    assert [s.digest for s in c.steps[1:]] == [digest(f, "a") for f in FILES]


def test_recorded_and_present_is_unchanged() -> None:
    plan = plan_of([desired("x")], [remote("x", "id1")], [locked("x", "id1")])
    assert only(plan).action is Action.NOOP
    assert not plan.has_changes


def test_asset_missing_from_lock_is_uploaded_alone() -> None:
    c = only(plan_of([desired("x")], [remote("x", "id1")], [locked("x", "id1", files=FILES[:1])]))
    assert c.action is Action.UPLOAD
    assert [(s.kind, s.asset.name) for s in c.steps] == [
        (StepKind.UPLOAD, "adapter_model.safetensors")
    ]
    assert c.remote_id == "id1"


def test_changed_description_is_blocked_with_before_and_after() -> None:
    plan = plan_of(
        [desired("x", description="new")], [remote("x", "id1", "old")], [locked("x", "id1")]
    )
    c = only(plan)
    assert c.action is Action.BLOCKED
    assert [(f.field, f.before, f.after) for f in c.fields] == [("description", "old", "new")]
    assert "new name" in c.reason
    assert plan.blocked == (c,) and not c.steps


def test_changed_asset_content_is_blocked() -> None:
    c = only(plan_of([desired("x", content="b")], [remote("x", "id1")], [locked("x", "id1")]))
    assert c.action is Action.BLOCKED
    assert "asset adapter_config.json" in c.reason and "asset adapter_model.safetensors" in c.reason
    assert [(a.before.sha256[7:9], a.after.sha256[7:9]) for a in c.assets] == [("aa", "bb")] * 2


def test_recorded_but_gone_is_created_again_with_a_warning() -> None:
    c = only(plan_of([desired("x")], [], [locked("x", "id1")]))
    assert c.action is Action.CREATE
    assert "gone from the account" in c.reason
    assert c.warnings == (f"finetune x (id id1) is no longer in account {ACCOUNT}",)


def test_recorded_but_replaced_by_a_stranger_of_the_same_name_is_blocked() -> None:
    c = only(plan_of([desired("x")], [remote("x", "other")], [locked("x", "id1")]))
    assert c.action is Action.BLOCKED and c.remote_id == "other"


def test_unrecorded_remote_of_the_same_name_is_blocked_not_duplicated() -> None:
    c = only(plan_of([desired("x")], [remote("x", "id1")]))
    assert c.action is Action.BLOCKED
    assert "not in the lockfile" in c.reason


def test_removed_from_config_is_forgotten_and_cloudflare_keeps_it() -> None:
    c = only(plan_of([], [remote("gone", "id9")], [locked("gone", "id9")]))
    assert c.action is Action.FORGET
    assert [s.kind for s in c.steps] == [StepKind.FORGET]
    assert "cannot delete it" in c.warnings[0]


def test_remote_only_finetune_is_unmanaged_and_untouched() -> None:
    plan = plan_of([], [remote("theirs", "id5")])
    c = only(plan)
    assert c.action is Action.UNMANAGED and not c.steps
    assert not plan.has_changes


def test_lock_from_another_endpoint_is_refused() -> None:
    with pytest.raises(PlanError, match="made against sandbox"):
        plan_of([desired("x")], [], [locked("x", "id1")], endpoints={"cloudflare": "https://api"})


def test_build_is_deterministic() -> None:
    args = ([desired("x"), desired("y")], [remote("x", "1"), remote("z", "3")], [locked("x", "1")])
    assert plan_of(*args) == plan_of(*args)


def test_text_rendering_golden() -> None:
    plan = plan_of(
        [
            desired("new"),
            desired("partial"),
            desired("edited", description="new text"),
            desired("same"),
        ],
        [
            remote("partial", "id-p"),
            remote("edited", "id-e", "old text"),
            remote("same", "id-s"),
            remote("theirs", "id-t"),
        ],
        [
            locked("partial", "id-p", files=FILES[:1]),
            locked("edited", "id-e"),
            locked("same", "id-s"),
            locked("retired", "id-r"),
        ],
    )
    rendered = text.render(plan, color=False)
    golden = GOLDEN / "plan_all_kinds.txt"
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    assert "\x1b[" not in rendered
    coloured = text.render(plan, color=True)
    assert "\x1b[32m" in coloured  # green for creates when on a colour terminal
