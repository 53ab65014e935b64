"""Frictions a new user met (issue 21), each reproduced through the CLI against the sandbox."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CANARY_TOKEN, ROOT, Cli

from reconciler.sandbox.server import SandboxServer

TYPO = "@cf/google/gemma-2b-it-lroa"


def test_a_model_typo_on_an_existing_finetune_is_named_a_typo(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    project.write_text(project.read_text().replace("@cf/google/gemma-2b-it-lora", TYPO))
    planned = cli("plan", "-c", project)
    assert planned.exit_code == 1
    assert "did you mean @cf/google/gemma-2b-it-lora?" in planned.output
    assert "versioning: content" not in planned.output
    assert "deprecated" not in planned.output


def _rename(project: Path, cli: Cli) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    project.write_text(project.read_text().replace("faq-bot-v1", "faq-bot-v2"))
    applied = cli("apply", "-c", project, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "kept in the account as a leftover" in applied.output


def test_a_finetune_reconciler_renamed_on_cloudflare_is_a_leftover_not_drift(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    """Before: drift reported the old name as unmanaged, exit 2, on every run from then on."""
    _rename(project, cli)
    lock = json.loads(project.with_name("finetunes.lock").read_text())
    (left,) = lock["leftovers"]
    assert (left["name"], left["remote_name"], left["provider"]) == (
        "faq-bot-v1",
        "faq-bot-v1",
        "cloudflare",
    )
    drift = cli("drift", "-c", project)
    assert drift.exit_code == 0, drift.output
    assert ". cloudflare.faq-bot-v1 (leftover): made by reconciler as faq-bot-v1" in drift.output
    assert "No drift: the accounts match the lockfile (1 leftover kept, not drift)." in drift.output
    as_json = json.loads(cli("drift", "-c", project, "--format", "json").output)
    assert as_json["has_drift"] is False
    assert [d["kind"] for d in as_json["drift"]] == ["leftover"]
    planned = cli("plan", "-c", project, "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "Unmanaged" not in planned.output
    listed = cli("list", "-c", project, "--format", "json")
    states = {row["name"]: row["state"] for row in json.loads(listed.output)["finetunes"]}
    assert states["faq-bot-v1"] == "leftover"


def test_forget_lets_go_of_a_leftover_which_is_then_unmanaged(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    _rename(project, cli)
    forgot = cli("forget", "faq-bot-v1", "-c", project)
    assert forgot.exit_code == 0, forgot.output
    assert "Forgot faq-bot-v1" in forgot.output
    assert "leftovers" not in json.loads(project.with_name("finetunes.lock").read_text())
    drift = cli("drift", "-c", project)
    assert drift.exit_code == 2
    assert "? cloudflare.faq-bot-v1 (unmanaged)" in drift.output


def test_a_leftover_named_again_and_imported_is_managed_again(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    _rename(project, cli)
    project.write_text(project.read_text().replace("faq-bot-v2", "faq-bot-v1"))
    imported = cli("import", "faq-bot-v1", "-c", project)
    assert imported.exit_code == 0, imported.output
    lock = json.loads(project.with_name("finetunes.lock").read_text())
    assert "faq-bot-v1" in lock["finetunes"] and "leftovers" not in lock


def test_a_lock_made_with_sandbox_is_said_at_once_against_a_real_endpoint(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    """Before: plan and drift listed (and retried) the real API first; now nothing is sent."""
    assert cli("apply", "-c", project, "--sandbox", "--auto-approve").exit_code == 0
    for command in ("plan", "drift", "list"):
        result = cli(command, "-c", project)
        assert result.exit_code == 1, (command, result.output)
        assert "made against sandbox" in result.stderr, (command, result.output)
        assert "add --sandbox" in result.stderr
    assert cf_env.request_log == []


def test_the_saved_plan_hint_of_a_sandbox_plan_says_sandbox(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(project.parent)
    planned = cli("plan", "-c", project, "--sandbox", "-o", "tf.plan")
    assert planned.exit_code == 0, planned.output
    hint = "apply exactly it with: reconciler apply --sandbox tf.plan"
    assert hint in planned.stderr
    # the hinted command is one that works
    applied = cli(*hint.split(": ", 1)[1].split()[1:])
    assert applied.exit_code == 0, applied.output


def test_a_new_version_shows_only_the_files_that_changed(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    assert cli("apply", "-c", versioned, "--auto-approve").exit_code == 0
    weights = versioned.parent / "adapters/support-v3/adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
    planned = cli("plan", "-c", versioned)
    assert planned.exit_code == 0, planned.output
    rows = {line.split("=")[0].strip(): line for line in planned.stdout.splitlines() if "=" in line}
    assert rows['~ asset "adapter_model.safetensors"'].count("sha256:") == 2
    # the unchanged file is shown as carried over, with no symbol and one digest
    unchanged = rows['asset "adapter_config.json"']
    assert unchanged.count("sha256:") == 1 and "->" not in unchanged


@pytest.fixture
def cohere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "remote", tokens=(CANARY_TOKEN,), clock_speed=300) as server:
        monkeypatch.setenv("CO_API_KEY", CANARY_TOKEN)
        monkeypatch.setenv("CO_API_URL", server.url)
        monkeypatch.setenv("RECONCILER_POLL_INTERVAL", "0.02")
        yield server


def _versioned_cohere(tmp_path: Path, more: str = "") -> Path:
    """The Cohere example, its chat finetune versioned by content (and `more` settings)."""
    shutil.copytree(ROOT / "examples" / "cohere", tmp_path / "c")
    config = tmp_path / "c" / "finetunes.yaml"
    config.write_text(
        config.read_text().replace(
            "    hyperparameters: {train_epochs: 1, learning_rate: 0.01}\n",
            "    hyperparameters: {train_epochs: 1, learning_rate: 0.01}\n"
            "    versioning: content\n" + more,
        )
    )
    return config


def test_a_new_cohere_version_shows_no_unset_hyperparameter(
    cli: Cli, cohere: SandboxServer, tmp_path: Path
) -> None:
    config = _versioned_cohere(tmp_path)
    assert cli("apply", "-c", config, "--auto-approve", "--wait").exit_code == 0
    config.write_text(config.read_text().replace("train_epochs: 1,", "train_epochs: 2,"))
    planned = cli("plan", "-c", config)
    assert "train_epochs" in planned.stdout
    assert "null" not in planned.stdout


def test_validate_reports_a_model_typo_beside_a_key_typo(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
    project.write_text(
        project.read_text()
        .replace("    description: Answers", "    descripton: Answers")
        .replace("@cf/google/gemma-2b-it-lora", TYPO)
    )
    result = cli("validate", "-c", project)
    assert result.exit_code == 1
    assert "unknown key 'descripton'" in result.stderr
    assert "(did you mean @cf/google/gemma-2b-it-lora?)" in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if TYPO in x]
    assert line.startswith(f"{project}:23:12: warning: finetune 'faq-bot-v1': model {TYPO}")


def test_keep_on_cloudflare_is_said_by_validate_at_its_line(
    cli: Cli, versioned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
    versioned.write_text(
        versioned.read_text().replace("    public: false\n", "    public: false\n    keep: 2\n", 1)
    )
    line = versioned.read_text().splitlines().index("    keep: 2") + 1
    result = cli("validate", "-c", versioned)
    # before: a warning, exit 0, then a plan blocked with an empty `! finetune { }` block
    assert result.exit_code == 1
    assert f"{versioned}:{line}:11: error: finetune 'support-bot-v3': keep: 2 " in result.stderr
    assert "cloudflare cannot delete a finetune" in result.stderr
    planned = cli("plan", "-c", versioned)
    assert planned.exit_code == 1 and "{ }" not in planned.output
    assert f"{versioned}:{line}:11: error:" in planned.stderr


def test_a_changed_base_url_of_the_same_api_is_rebound_by_a_command(
    cli: Cli, cf_env: SandboxServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    # the same API behind another address (a proxy): here the same sandbox, spelled otherwise
    proxy = cf_env.cloudflare_base_url.replace("127.0.0.1", "localhost")
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", proxy)
    refused = cli("plan", "-c", project)
    assert refused.exit_code == 1
    assert "reconciler rebind cloudflare" in refused.stderr
    rebound = cli("rebind", "cloudflare", "-c", project)
    assert rebound.exit_code == 0, rebound.output
    assert proxy in rebound.stdout
    assert json.loads(project.with_suffix(".lock").read_text())["endpoints"] == {
        "cloudflare": proxy
    }
    assert cli("plan", "-c", project, "--detailed-exitcode").exit_code == 0


def test_rebind_refuses_an_endpoint_that_does_not_hold_the_lockfile_finetunes(
    cli: Cli, cf_env: SandboxServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    before = project.with_suffix(".lock").read_bytes()
    with SandboxServer(project.parent / "other", tokens=(CANARY_TOKEN,)) as other:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", other.cloudflare_base_url)
        refused = cli("rebind", "cloudflare", "-c", project)
    assert refused.exit_code == 1
    assert "not found at" in refused.stderr
    assert project.with_suffix(".lock").read_bytes() == before


@pytest.mark.parametrize(
    ("found", "said"),
    [
        ({"CF_API_TOKEN": CANARY_TOKEN}, "CF_API_TOKEN is set"),
        (
            {"CLOUDFLARE_API_KEY": CANARY_TOKEN, "CLOUDFLARE_EMAIL": "me@example.com"},
            "CLOUDFLARE_API_KEY and CLOUDFLARE_EMAIL are set",
        ),
    ],
)
def test_wranglers_variables_are_named_when_the_token_is_unset(
    cli: Cli,
    cf_env: SandboxServer,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    found: dict[str, str],
    said: str,
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    for variable, value in found.items():
        monkeypatch.setenv(variable, value)
    result = cli("plan", "-c", project)
    assert result.exit_code == 1
    assert "CLOUDFLARE_API_TOKEN is not set" in result.stderr
    assert said in result.stderr
    assert "me@example.com" not in result.output + result.stderr
    assert cf_env.request_log == []


def test_bash_completion_of_show_offers_the_finetune_names(project: Path) -> None:
    """click's bash script empties its replies at a `file` item: the names must come after it."""
    script = (
        'eval "$(_RECONCILER_COMPLETE=bash_source reconciler)"; '
        'COMP_WORDS=(reconciler show ""); COMP_CWORD=2; _reconciler_completion reconciler; '
        'echo "[${COMPREPLY[*]}]"'
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", script], cwd=project.parent, env=env, capture_output=True, text=True
    )
    assert "[faq-bot-v1 support-bot-v3]" in done.stdout, done.stdout + done.stderr


def test_forget_of_a_name_the_config_declares_warns_without_the_account_variable(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After --sandbox runs CLOUDFLARE_ACCOUNT_ID is unset: the config did not load, and the
    warning was dropped."""
    for var in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert cli("apply", "-c", project, "--sandbox", "--auto-approve").exit_code == 0
    result = cli("forget", "faq-bot-v1", "-c", project)
    assert result.exit_code == 0, result.output
    assert "still declares faq-bot-v1" in result.stderr


def test_the_keep_delete_plan_names_the_version_it_deletes(
    cli: Cli, cohere: SandboxServer, tmp_path: Path
) -> None:
    config = _versioned_cohere(tmp_path, "    keep: 1\n")
    assert cli("apply", "-c", config, "--auto-approve", "--wait").exit_code == 0
    first = json.loads(cli("output", "-c", config).stdout)["support-chat"]["name"]
    config.write_text(config.read_text().replace("train_epochs: 1,", "train_epochs: 2,"))
    assert cli("apply", "-c", config, "--auto-approve", "--wait").exit_code == 0
    cleanup = cli("plan", "-c", config)
    assert f"# support-chat will be deleted: {first}: a version of support-chat" in cleanup.stdout
    assert re.search(rf'- version +\= "{first}"', cleanup.stdout), cleanup.stdout


def test_a_cohere_version_becomes_current_only_once_trained(
    cli: Cli, cohere: SandboxServer, tmp_path: Path
) -> None:
    """Before: "current: support-chat-<v>" was printed, and recorded, before training was
    even queued, so `output` named a model still training."""
    config = _versioned_cohere(tmp_path)
    first = cli("apply", "-c", config, "--auto-approve", "--wait")
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    ready = max(i for i, line in enumerate(lines) if "support-chat: STATUS_READY" in line)
    (current,) = [i for i, x in enumerate(lines) if x.startswith("  support-chat: current: ")]
    assert current > ready  # made current after training, not at the create
    assert "promote: not yet current: support-chat-" in first.output
    v1 = json.loads(cli("output", "-c", config).stdout)["support-chat"]["name"]

    config.write_text(config.read_text().replace("train_epochs: 1,", "train_epochs: 2,"))
    second = cli("apply", "-c", config, "--auto-approve")  # no --wait
    assert second.exit_code == 0, second.output
    assert "not yet current" in second.output
    assert json.loads(cli("output", "-c", config).stdout)["support-chat"]["name"] == v1
    third = cli("apply", "-c", config, "--auto-approve", "--wait")
    assert third.exit_code == 0, third.output
    v2 = json.loads(cli("output", "-c", config).stdout)["support-chat"]["name"]
    assert v2 != v1 and v2.startswith("support-chat-")
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_drift_suggests_import_for_an_unmanaged_finetune_the_config_declares(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    assert cli("forget", "faq-bot-v1", "-c", project).exit_code == 0
    drift = cli("drift", "-c", project)
    assert drift.exit_code == 2
    assert "`reconciler import faq-bot-v1` adopts it" in drift.stdout


def test_apply_says_which_outputs_files_it_wrote(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    applied = cli("apply", "-c", versioned, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Wrote worker/loras.json, worker/loras.env (outputs:)." in applied.stderr
    again = cli("apply", "-c", versioned, "--auto-approve")
    assert "Wrote" not in again.stderr  # unchanged files are left alone, and not named


def test_show_name_lists_the_versions(cli: Cli, cf_env: SandboxServer, versioned: Path) -> None:
    assert cli("apply", "-c", versioned, "--auto-approve").exit_code == 0
    first = json.loads(cli("output", "-c", versioned).stdout)["support-bot-v3"]["name"]
    weights = versioned.parent / "adapters/support-v3/adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
    assert cli("apply", "-c", versioned, "--auto-approve").exit_code == 0
    second = json.loads(cli("output", "-c", versioned).stdout)["support-bot-v3"]["name"]
    shown = cli("show", "support-bot-v3", "-c", versioned)
    assert shown.exit_code == 0, shown.output
    assert f"  current version: {second}" in shown.stdout
    assert re.search(rf"^    {first} +retired", shown.stdout, re.M), shown.stdout


def test_a_blocked_finetune_that_names_nothing_yet_shows_which_one_it_is() -> None:
    from reconciler.plan.changes import Action, Change, Plan
    from reconciler.render import text

    blocked = Change("support-bot", "cloudflare", "0123", Action.BLOCKED, "cannot be made")
    shown = text.render(Plan(changes=(blocked,)), color=False)
    body = shown[shown.index('! finetune "support-bot" {') :].splitlines()[1:3]
    assert [line.split() for line in body] == [
        ["provider", "=", '"cloudflare"'],
        ["account", "=", '"0123"'],
    ]
