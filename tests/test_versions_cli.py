"""Releases for finetunes that cannot change, end to end over real HTTP against the sandbox:
content-addressed versions, switching back without a re-upload, the promotion gate, keep on a
provider that can delete, outputs for the apps, ignore."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ACCOUNT, CANARY_TOKEN, ROOT, Cli

from reconciler.sandbox.server import SandboxServer

WEIGHTS = "adapters/support-v3/adapter_model.safetensors"


def flip_last_byte(path: Path) -> bytes:
    """Change one byte of the tensor data (the file's last byte): same header, new content."""
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
    return data


def posts(sandbox: SandboxServer) -> int:
    return len([c for c in sandbox.request_log if c[0] == "POST" and "/ai/run/" not in c[1]])


def ok(result: object) -> None:
    assert getattr(result, "exit_code", None) == 0, getattr(result, "output", result)


def output(cli: Cli, config: Path) -> dict:
    result = cli("output", "-c", config)
    ok(result)
    return json.loads(result.stdout)


def test_a_new_adapter_is_a_new_version_and_reverting_switches_back(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    first = output(cli, versioned)
    name = first["support-bot-v3"]["name"]
    assert re.fullmatch(r"support-bot-v3-[0-9a-f]{8}", name)
    assert first["support-bot-v3"]["version"] == name.rsplit("-", 1)[1]
    assert first["support-bot-v3"]["provider"] == "cloudflare"
    assert first["support-bot-v3"]["account"] == ACCOUNT
    assert cli("drift", "-c", versioned).exit_code == 0
    # the files the app reads were written, and parse
    app = json.loads((versioned.parent / "worker" / "loras.json").read_text())
    assert app == first
    assert (
        f"RECONCILER_SUPPORT_BOT_V3={name}\n"
        in (versioned.parent / "worker" / "loras.env").read_text()
    )

    original = flip_last_byte(versioned.parent / WEIGHTS)
    planned = cli("plan", "-c", versioned, "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "Plan: 1 to create, 0 to upload, 0 to forget, 1 unchanged." in planned.stdout
    assert "adapter_model.safetensors content changed: new version support-bot-v3-" in (
        planned.stdout
    )
    assert f"supersedes {name}" in planned.stdout
    document = json.loads(cli("plan", "-c", versioned, "--format", "json").stdout)
    (change,) = [c for c in document["changes"] if c["name"] == "support-bot-v3"]
    assert change["actions"] == ["create"]
    assert change["version"]["supersedes"] == name
    markdown = cli("plan", "-c", versioned, "--format", "markdown").stdout
    assert f"(`{name}` → `{change['version']['name']}`)" in markdown

    ok(cli("apply", "-c", versioned, "--auto-approve"))
    second = output(cli, versioned)["support-bot-v3"]["name"]
    assert second == change["version"]["name"] != name
    assert (
        json.loads((versioned.parent / "worker" / "loras.json").read_text())["support-bot-v3"][
            "name"
        ]
        == second
    )
    replanned = cli("plan", "-c", versioned, "--detailed-exitcode")
    assert replanned.exit_code == 0, replanned.output
    assert "1 retired version of versioned finetunes kept" in replanned.stdout
    assert "Unmanaged" not in replanned.stdout  # the old version is retired, not unmanaged
    assert cli("drift", "-c", versioned).exit_code == 0
    lock = json.loads(versioned.with_suffix(".lock").read_text())
    (retired,) = lock["versions"]["support-bot-v3"].values()
    assert (retired["remote_name"], retired["state"]) == (name, "retired")

    # restoring the byte: back to the first version, nothing created, nothing uploaded
    (versioned.parent / WEIGHTS).write_bytes(original)
    back = cli("plan", "-c", versioned)
    assert "Plan: 0 to create, 0 to upload, 1 to switch, 0 to forget, 1 unchanged." in (back.stdout)
    assert f"switching back to {name}" in back.stdout
    before = posts(cf_env)
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    assert posts(cf_env) == before  # nothing sent
    assert output(cli, versioned)["support-bot-v3"]["name"] == name
    assert cli("plan", "-c", versioned, "--detailed-exitcode").exit_code == 0
    assert cli("drift", "-c", versioned).exit_code == 0


def test_a_failing_check_keeps_the_previous_version_current(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    name = output(cli, versioned)["support-bot-v3"]["name"]
    flip_last_byte(versioned.parent / WEIGHTS)
    versioned.write_text(
        versioned.read_text().replace("not_contains: error", "matches: no-model-says-this")
    )
    failed = cli("apply", "-c", versioned, "--auto-approve")
    assert failed.exit_code == 1, failed.stderr
    assert "FAIL" in failed.stdout, failed.stderr
    assert f"it is recorded as a failed candidate, and {name} stays current" in failed.stdout
    assert output(cli, versioned)["support-bot-v3"]["name"] == name
    lock = json.loads(versioned.with_suffix(".lock").read_text())
    assert [v["state"] for v in lock["versions"]["support-bot-v3"].values()] == ["failed"]
    assert cli("drift", "-c", versioned).exit_code == 0
    # the next plan checks the failed candidate again rather than making another
    again = cli("plan", "-c", versioned)
    assert "this version failed its checks at an earlier apply" in again.stdout
    # in an emergency the gate can be skipped, and the output says so
    skipped = cli("apply", "-c", versioned, "--auto-approve", "--skip-checks")
    ok(skipped)
    assert "Checks were skipped (--skip-checks)" in skipped.stderr
    assert output(cli, versioned)["support-bot-v3"]["name"] != name


def test_keep_is_refused_where_the_provider_cannot_delete(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    versioned.write_text(
        versioned.read_text().replace("    public: false\n", "    public: false\n    keep: 2\n", 1)
    )
    result = cli("plan", "-c", versioned)
    assert result.exit_code == 1
    assert "keep: 2 asks to delete old versions, but cloudflare cannot delete a finetune" in (
        result.stderr
    )
    assert cf_env.request_log == []  # refused with the config, before any request


def test_ignore_silences_finetunes_made_by_hand(
    cli: Cli, cf_env: SandboxServer, project: Path, api_for_env: object
) -> None:
    ok(cli("apply", "-c", project, "--auto-approve"))
    client = api_for_env
    for name in ("hand-made-1", "scratch"):
        answer = client.post(  # type: ignore[attr-defined]
            f"/accounts/{ACCOUNT}/ai/finetunes",
            json={"model": "@cf/mistral/mistral-7b-instruct-v0.2-lora", "name": name},
        )
        assert answer.status_code == 200, answer.text
    assert cli("drift", "-c", project).exit_code == 2
    project.write_text(
        project.read_text().replace(
            "    account_id: ${CLOUDFLARE_ACCOUNT_ID}\n",
            "    account_id: ${CLOUDFLARE_ACCOUNT_ID}\n    ignore: [hand-made-*, scratch]\n",
        )
    )
    assert cli("drift", "-c", project).exit_code == 0
    planned = cli("plan", "-c", project)
    assert "Unmanaged" not in planned.stdout


@pytest.fixture
def api_for_env(cf_env: SandboxServer) -> Iterator[object]:
    import httpx

    with httpx.Client(
        base_url=cf_env.cloudflare_base_url, headers={"Authorization": f"Bearer {CANARY_TOKEN}"}
    ) as client:
        yield client


# --- keep: N where the provider can delete (Cohere, in the sandbox) ---


@pytest.fixture
def cohere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "remote", tokens=(CANARY_TOKEN,), clock_speed=300) as server:
        monkeypatch.setenv("CO_API_KEY", CANARY_TOKEN)
        monkeypatch.setenv("CO_API_URL", server.url)
        monkeypatch.setenv("RECONCILER_POLL_INTERVAL", "0.02")
        yield server


def test_keep_one_deletes_the_superseded_model_once_the_new_one_is_ready(
    cli: Cli, cohere: SandboxServer, tmp_path: Path
) -> None:
    shutil.copytree(ROOT / "examples" / "cohere", tmp_path / "c")
    config = tmp_path / "c" / "finetunes.yaml"
    config.write_text(
        config.read_text().replace(
            "    hyperparameters: {train_epochs: 1, learning_rate: 0.01}\n",
            "    hyperparameters: {train_epochs: 1, learning_rate: 0.01}\n"
            "    versioning: content\n    keep: 1\n",
        )
    )
    ok(cli("apply", "-c", config, "--auto-approve", "--wait"))
    first = output(cli, config)["support-chat"]["name"]
    config.write_text(config.read_text().replace("train_epochs: 1,", "train_epochs: 2,"))
    planned = cli("plan", "-c", config)
    assert "new version support-chat-" in planned.stdout
    assert "to delete" not in planned.stdout  # create before destroy
    ok(cli("apply", "-c", config, "--auto-approve", "--wait"))
    second = output(cli, config)["support-chat"]["name"]
    assert second != first
    remote = {m["name"] for m in _cohere_models(cohere)}
    assert {first, second} <= remote  # the old one stays until the new one is ready
    cleanup = cli("plan", "-c", config)
    assert "1 to delete" in cleanup.stdout
    assert "a version of support-chat older than the 1 kept" in cleanup.stdout
    ok(cli("apply", "-c", config, "--auto-approve"))
    remote = {m["name"] for m in _cohere_models(cohere)}
    assert second in remote and first not in remote
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0
    assert "versions" not in json.loads(config.with_suffix(".lock").read_text())


def _cohere_models(server: SandboxServer) -> list[dict]:
    import httpx

    answer = httpx.get(
        f"{server.url}/v1/finetuning/finetuned-models",
        params={"page_size": 50},
        headers={"Authorization": f"Bearer {CANARY_TOKEN}"},
    )
    answer.raise_for_status()
    return list(answer.json()["finetuned_models"])


def test_apply_refresh_only_accepts_remote_changes_so_drift_clears(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    from test_lifecycle import create_remote, dashboard

    ok(cli("apply", "-c", project, "--auto-approve"))
    dashboard(
        cf_env,
        "UPDATE finetunes SET description = 'edited by hand' WHERE name = ?",
        "support-bot-v3",
    )
    dashboard(
        cf_env,
        "DELETE FROM assets WHERE finetune_id IN (SELECT id FROM finetunes WHERE name = ?)",
        "faq-bot-v1",
    )
    dashboard(cf_env, "DELETE FROM finetunes WHERE name = ?", "faq-bot-v1")
    create_remote(cf_env, "stray")
    assert cli("drift", "-c", project).exit_code == 2
    refused = cli("apply", "-c", project, "--refresh-only", input="no\n")
    assert refused.exit_code == 1  # not confirmed: nothing recorded
    assert cli("drift", "-c", project).exit_code == 2
    before = posts(cf_env)
    accepted = cli("apply", "-c", project, "--refresh-only", "--auto-approve")
    ok(accepted)
    assert "Refresh complete: 2 records updated." in accepted.stdout
    assert posts(cf_env) == before  # nothing sent to the provider
    lock = json.loads(project.with_suffix(".lock").read_text())
    assert lock["finetunes"]["support-bot-v3"]["fields"]["description"] == "edited by hand"
    assert lock["finetunes"]["support-bot-v3"]["fields"]["public"] is False  # kept
    assert "faq-bot-v1" not in lock["finetunes"]
    remaining = cli("drift", "-c", project)
    assert remaining.stdout.splitlines()[0].startswith("? cloudflare.stray (unmanaged)")


def test_the_versioned_example_applies_and_writes_the_workers_file(
    cli: Cli, cf_env: SandboxServer, tmp_path: Path
) -> None:
    target = tmp_path / "versioned"
    shutil.copytree(
        ROOT / "examples" / "versioned",
        target,
        ignore=shutil.ignore_patterns(".reconciler", "*.lock", "loras.json"),
    )
    config = target / "finetunes.yaml"
    applied = cli("apply", "-c", config, "--auto-approve")
    ok(applied)
    assert "1 passed" in applied.stdout  # the gate ran the check against the new version
    loras = json.loads((target / "worker" / "src" / "loras.json").read_text())
    assert loras == output(cli, config)
    assert re.fullmatch(r"support-bot-[0-9a-f]{8}", loras["support-bot"]["name"])
    assert "lora: adapter.name" in (target / "worker" / "src" / "index.js").read_text()
