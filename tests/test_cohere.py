"""Cohere end to end over real HTTP: every plan and apply semantic of the second provider."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CANARY_TOKEN, ROOT, Cli

from reconciler.sandbox.server import SandboxServer

EXAMPLE = ROOT / "examples" / "cohere"


@pytest.fixture
def cohere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    # a fast clock: validation and training take a fraction of a second
    with SandboxServer(tmp_path / "remote", tokens=(CANARY_TOKEN,), clock_speed=300) as server:
        monkeypatch.setenv("CO_API_KEY", CANARY_TOKEN)
        monkeypatch.setenv("CO_API_URL", server.url)
        monkeypatch.setenv("RECONCILER_POLL_INTERVAL", "0.02")
        yield server


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(
        EXAMPLE, tmp_path / "project", ignore=shutil.ignore_patterns(".reconciler", "*.lock")
    )
    return tmp_path / "project" / "finetunes.yaml"


def edit(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def lock(config: Path) -> dict:
    return json.loads(config.with_suffix(".lock").read_text())


def calls(server: SandboxServer, method: str, fragment: str) -> int:
    return len([c for c in server.request_log if c[0] == method and fragment in c[1]])


def applied(cli: Cli, config: Path, *extra: str) -> str:
    result = cli("apply", "-c", config, "--auto-approve", *extra)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_example_plans_applies_with_wait_and_replans_clean(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    plan = cli("plan", "-c", config, "--detailed-exitcode")
    assert plan.exit_code == 2
    assert "Plan: 2 to create, 0 to upload, 0 to forget, 0 unchanged." in plan.stdout
    out = applied(cli, config, "--wait")
    assert "Apply complete: 2 created, 2 uploaded, 0 forgotten." in out
    assert "support-chat: STATUS_QUEUED" in out
    assert "legal-rerank: STATUS_READY" in out
    assert out.rstrip().endswith("Training finished: 2 ready, 0 not.")
    assert out.index("upload dataset") < out.index("create: created")  # dataset first
    entry = lock(config)["finetunes"]["legal-rerank"]
    assert entry["provider"] == "cohere" and entry["prevent_destroy"] is True
    assert entry["assets"]["dataset"]["id"]  # the dataset id is recorded with its digest
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0
    assert calls(cohere, "GET", "/v1/finetuning/finetuned-models") >= 1


def test_changed_hyperparameters_update_in_place_and_retrain(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    applied(cli, config, "--wait")
    before = lock(config)["finetunes"]["support-chat"]["id"]
    edit(config, "train_epochs: 1,", "train_epochs: 3,")
    plan = cli("plan", "-c", config)
    assert '~ finetune "support-chat"' in plan.stdout
    assert "~ hyperparameters.train_epochs = 1 -> 3" in plan.stdout
    assert "(it retrains)" in plan.stdout
    assert "Plan: 0 to create, 1 to update, 0 to upload, 0 to forget, 1 unchanged." in plan.stdout
    out = applied(cli, config, "--wait")
    assert "support-chat: update: updated" in out
    assert calls(cohere, "PATCH", "/v1/finetuning/finetuned-models/") == 1
    assert lock(config)["finetunes"]["support-chat"]["id"] == before
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_changed_dataset_uploads_first_then_patches(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    applied(cli, config)
    old_dataset = lock(config)["finetunes"]["support-chat"]["assets"]["dataset"]
    data = config.parent / "data" / "support-chat.jsonl"
    data.write_text(data.read_text() + data.read_text().splitlines()[0] + "\n")
    plan = cli("plan", "-c", config)
    assert 'asset "dataset"' in plan.stdout and "dataset content changed" in plan.stdout
    out = applied(cli, config)
    assert out.index("support-chat: upload dataset") < out.index("support-chat: update")
    new_dataset = lock(config)["finetunes"]["support-chat"]["assets"]["dataset"]
    assert new_dataset["id"] != old_dataset["id"] and new_dataset["sha256"] != old_dataset["sha256"]
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_changed_base_model_is_a_replacement(cli: Cli, cohere: SandboxServer, config: Path) -> None:
    applied(cli, config)
    before = lock(config)["finetunes"]["support-chat"]["id"]
    edit(
        config,
        "base_model: {base_type: BASE_TYPE_CHAT}",
        "base_model: {base_type: BASE_TYPE_CHAT, name: command-r}",
    )
    plan = cli("plan", "-c", config, "--format", "json")
    change = next(c for c in json.loads(plan.stdout)["changes"] if c["name"] == "support-chat")
    assert change["actions"] == ["delete", "create"]
    text = cli("plan", "-c", config).stdout
    assert '-/+ finetune "support-chat"' in text and "must be replaced" in text
    out = applied(cli, config)
    assert out.index("support-chat: delete") < out.index("support-chat: create")
    assert lock(config)["finetunes"]["support-chat"]["id"] != before
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_prevent_destroy_blocks_a_replacement(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    applied(cli, config)
    edit(config, "name: english}", "name: multilingual}")
    result = cli("apply", "-c", config, "--auto-approve")
    assert result.exit_code == 1
    assert "prevent_destroy is set" in result.stdout
    assert calls(cohere, "DELETE", "/v1/finetuning") == 0


def test_rename_with_previous_name_is_in_place(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    applied(cli, config)
    remote_id = lock(config)["finetunes"]["support-chat"]["id"]
    edit(
        config,
        "  - name: support-chat\n",
        "  - name: helpdesk-chat\n    previous_name: support-chat\n",
    )
    plan = cli("plan", "-c", config)
    assert '~ name = "support-chat" -> "helpdesk-chat"' in plan.stdout
    assert "to forget" in plan.stdout and "1 to update" in plan.stdout
    applied(cli, config)
    entries = lock(config)["finetunes"]
    assert "support-chat" not in entries and entries["helpdesk-chat"]["id"] == remote_id
    assert calls(cohere, "DELETE", "/v1/finetuning") == 0
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_renamed_remotely_is_found_by_its_id_and_renamed_back(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    import httpx

    applied(cli, config)
    remote_id = lock(config)["finetunes"]["support-chat"]["id"]
    headers = {"Authorization": f"Bearer {CANARY_TOKEN}"}
    model = httpx.get(
        f"{cohere.url}/v1/finetuning/finetuned-models/{remote_id}", headers=headers
    ).json()
    body = {"name": "renamed-by-hand", "settings": model["finetuned_model"]["settings"]}
    httpx.patch(
        f"{cohere.url}/v1/finetuning/finetuned-models/{remote_id}", headers=headers, json=body
    ).raise_for_status()
    plan = cli("plan", "-c", config)
    assert '~ name = "renamed-by-hand" -> "support-chat"' in plan.stdout
    applied(cli, config)
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_removed_is_forgotten_unless_pruned_and_never_if_protected(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    applied(cli, config)
    text = config.read_text()
    config.write_text(
        text[: text.index("  - name: support-chat")] + text[text.index("  - name: legal-rerank") :]
    )
    forgotten = cli("plan", "-c", config)
    assert '. finetune "support-chat"' in forgotten.stdout
    assert "apply with --prune" in forgotten.stdout
    pruned = cli("plan", "-c", config, "--prune")
    assert '- finetune "support-chat"' in pruned.stdout and "1 to delete" in pruned.stdout
    out = applied(cli, config, "--prune")
    assert "support-chat: delete: deleted" in out
    assert calls(cohere, "DELETE", "/v1/finetuning/finetuned-models/") == 1
    assert "support-chat" not in lock(config)["finetunes"]

    config.write_text("version: 1\nproviders:\n  cohere: {}\nfinetunes: []\n")
    protected = cli("apply", "-c", config, "--auto-approve", "--prune")
    assert protected.exit_code == 1
    assert "prevent_destroy was set when it was applied" in protected.stdout
    assert calls(cohere, "DELETE", "/v1/finetuning/finetuned-models/") == 1


def test_failed_training_is_reported_and_replaced(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    data = config.parent / "data"
    (data / "support-chat.jsonl").rename(data / "fail-training.jsonl")  # the sandbox's marker
    edit(config, "data/support-chat.jsonl", "data/fail-training.jsonl")
    result = cli("apply", "-c", config, "--auto-approve", "--wait")
    assert result.exit_code == 1
    assert "support-chat: STATUS_FAILED" in result.stdout
    assert "Training finished: 1 ready, 1 not." in result.stdout
    plan = cli("plan", "-c", config)
    assert "training failed (STATUS_FAILED): it will be deleted, then created again" in plan.stdout


def test_show_prints_state_events_and_a_loss_chart(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    applied(cli, config, "--wait")
    result = cli("show", "legal-rerank", "-c", config)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("finetune legal-rerank\n  recorded: cohere account default, id ")
    assert "status STATUS_READY" in out
    assert out.index("STATUS_QUEUED") < out.index("STATUS_FINETUNING") < out.rindex("STATUS_READY")
    assert "cross_entropy over" in out and "*" in out
    assert cli("show", "nope", "-c", config).exit_code == 1


def test_invalid_dataset_shows_the_validation_error(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    (config.parent / "data" / "support-chat.jsonl").write_text('{"messages": []}\nnot json\n')
    result = cli("apply", "-c", config, "--auto-approve")
    assert result.exit_code == 1
    assert "Cohere refused the dataset:" in result.stdout
    assert "support-chat" not in lock(config)["finetunes"]


def test_hyperparameters_outside_the_published_ranges_are_refused_before_any_call(
    cli: Cli, cohere: SandboxServer, config: Path
) -> None:
    edit(config, "train_epochs: 2", "train_epochs: 20")
    result = cli("plan", "-c", config)
    assert result.exit_code == 1
    assert (
        "finetunes[1].hyperparameters.train_epochs: 20 is greater than the maximum of 10"
        in result.stderr
    )
    assert cohere.request_log == []


def test_an_imported_model_can_be_updated(cli: Cli, cohere: SandboxServer, config: Path) -> None:
    applied(cli, config)
    lock_path = config.with_suffix(".lock")
    remote_id = lock(config)["finetunes"]["support-chat"]["id"]
    assert cli("forget", "support-chat", "-c", config).exit_code == 0
    imported = cli("import", "support-chat", "-c", config, "--confirm")
    assert imported.exit_code == 0, imported.output
    assert "id" not in lock(config)["finetunes"]["support-chat"]["assets"]["dataset"]
    edit(config, "train_epochs: 1,", "train_epochs: 2,")
    out = applied(cli, config)
    assert "support-chat: update: updated" in out
    assert lock(config)["finetunes"]["support-chat"]["id"] == remote_id
    assert lock_path.exists() and cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0
