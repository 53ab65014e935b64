"""Saved plans: apply exactly what was reviewed, and refuse when anything it came from moved."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import ACCOUNT, CANARY_TOKEN, ROOT, Cli
from jsonschema import Draft202012Validator

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer

PLAN_SCHEMA = Draft202012Validator(json.loads((ROOT / "schemas" / "plan.schema.json").read_text()))


def posts(sandbox: SandboxServer) -> int:
    return len([c for c in sandbox.request_log if c[0] == "POST"])


def test_saved_plan_applies_without_prompt_and_holds_no_secret(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    planfile = tmp_path / "review.plan"
    made = cli("plan", "-c", project, "-o", planfile, "--detailed-exitcode")
    assert made.exit_code == 2
    assert f"Saved the plan to {planfile}" in made.stderr
    content = planfile.read_text()
    assert CANARY_TOKEN not in content and DEFAULT_TOKEN not in content
    data = json.loads(content)
    # asset paths are relative to the config: the plan applies in another checkout
    assert str(project.parent) not in json.dumps([data["plan"], data["fingerprints"]])

    applied = cli("apply", planfile, "-c", project)  # no --auto-approve: the plan was reviewed
    assert applied.exit_code == 0, applied.output
    assert "Applying the saved plan" in applied.stdout
    assert "Apply complete: 2 created, 4 uploaded, 0 forgotten." in applied.stdout
    assert cli("plan", "-c", project, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    ("move", "expected"),
    [
        ("asset", "adapters/faq-v1/adapter_config.json changed content"),
        ("config", "the config declares something different"),
        ("lockfile", "the lockfile changed"),
        ("remote", f"the finetunes in cloudflare account {ACCOUNT} changed remotely"),
    ],
)
def test_stale_saved_plan_is_refused_saying_what_changed(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path, move: str, expected: str
) -> None:
    planfile = tmp_path / "review.plan"
    assert cli("plan", "-c", project, "-o", planfile).exit_code == 0
    folder = project.parent
    if move == "asset":
        with (folder / "adapters/faq-v1/adapter_config.json").open("a") as f:
            f.write("\n")  # still a valid config, other bytes
    elif move == "config":
        project.write_text(project.read_text().replace("Answers from", "Answers drawn from"))
    elif move == "lockfile":
        entry = {
            "provider": "cloudflare",
            "account": ACCOUNT,
            "id": "x",
            "model": "m",
            "assets": {},
        }
        lock_text = json.dumps({"format_version": 1, "finetunes": {"old-bot": entry}})
        project.with_suffix(".lock").write_text(lock_text)
    else:  # someone else created a finetune in the account meanwhile
        httpx.post(
            f"{cf_env.cloudflare_base_url}/accounts/{ACCOUNT}/ai/finetunes",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
            json={"name": "someone-else", "model": "@cf/google/gemma-2b-it-lora"},
        ).raise_for_status()
    lock = project.with_suffix(".lock")
    lock_before = lock.read_bytes() if lock.exists() else None
    before = posts(cf_env)

    result = cli("apply", planfile, "-c", project)
    assert result.exit_code == 1
    assert f"the saved plan {planfile} is stale" in result.stderr
    assert expected in result.stderr
    assert "Nothing was applied" in result.stderr
    assert posts(cf_env) == before
    assert (lock.read_bytes() if lock.exists() else None) == lock_before


def test_plan_file_from_elsewhere_is_refused(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.plan"
    bogus.write_text('{"hello": "world"}')
    result = cli("apply", bogus, "-c", project)
    assert result.exit_code == 1
    assert "not a reconciler plan file" in result.stderr
    assert cli("show", tmp_path / "absent.plan").stderr.startswith("Error: ")


def test_show_renders_a_saved_plan_in_every_format(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    planfile = tmp_path / "review.plan"
    assert cli("plan", "-c", project, "-o", planfile).exit_code == 0
    calls = len(cf_env.request_log)
    as_text = cli("show", planfile)
    assert as_text.exit_code == 0
    assert "Plan: 2 to create, 0 to upload, 0 to forget, 0 unchanged." in as_text.stdout
    as_json = cli("show", planfile, "--format", "json")
    data = json.loads(as_json.stdout)
    PLAN_SCHEMA.validate(data)
    assert data["summary"]["create"] == 2
    assert [c["address"] for c in data["changes"]] == [
        "cloudflare.support-bot-v3",
        "cloudflare.faq-bot-v1",
    ]
    assert cli("show", planfile, "--format", "markdown").stdout.startswith(
        "<!-- reconciler-plan -->\n### reconciler: Plan: 2 to create"
    )
    assert len(cf_env.request_log) == calls  # show never calls the API


def test_plan_json_matches_the_published_schema_in_every_state(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    first = json.loads(cli("plan", "-c", project, "--format", "json").stdout)
    PLAN_SCHEMA.validate(first)
    create = first["changes"][0]
    assert create["actions"] == ["create"]
    assert {"field": "public", "before": None, "after": False} in create["fields"]
    assert create["assets"][0]["before"] is None
    assert create["assets"][0]["after"]["sha256"].startswith("sha256:")
    assert first["has_changes"] is True and first["applicable"] is True

    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    project.write_text(project.read_text().replace("public: false", "public: true"))
    blocked = cli("plan", "-c", project, "--format", "json")
    assert blocked.exit_code == 1
    data = json.loads(blocked.stdout)
    PLAN_SCHEMA.validate(data)
    assert data["applicable"] is False
    assert data["summary"] == {
        "create": 0,
        "update": 0,
        "replace": 0,
        "delete": 0,
        "upload": 0,
        "forget": 0,
        "blocked": 1,
        "unchanged": 1,
        "unmanaged": 0,
        "switch": 0,
    }
    (change,) = [c for c in data["changes"] if c["actions"] == ["blocked"]]
    assert change["fields"] == [{"field": "public", "before": False, "after": True}]


def test_target_limits_plan_and_apply(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    planned = cli("plan", "-c", project, "--target", "faq-bot-v1")
    assert "Plan: 1 to create, 0 to upload" in planned.stdout
    assert "support-bot-v3" not in planned.stdout
    applied = cli("apply", "-c", project, "--auto-approve", "--target", "cloudflare.support-bot-v3")
    assert applied.exit_code == 0
    assert list(json.loads(project.with_suffix(".lock").read_text())["finetunes"]) == [
        "support-bot-v3"
    ]
    rest = cli("plan", "-c", project)
    assert "Plan: 1 to create, 0 to upload, 0 to forget, 1 unchanged." in rest.stdout
    unknown = cli("plan", "-c", project, "--target", "nope")
    assert unknown.exit_code == 1
    assert "--target nope: no such finetune" in unknown.stderr
