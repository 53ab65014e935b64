"""Fireworks adapters from a Hub repo (the sandbox's Hub at /hf) or from files at URLs: apply
fetches and verifies them before the create, which reads adapter_config.json's r and target
modules from the fetched file for peftDetails. The CLI through click's runner against the
sandbox on 127.0.0.1; the official SDK looks at what was made."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
import test_fireworks_cli
from conftest import Cli
from fireworks import Fireworks
from test_fireworks_cli import ACCOUNT, BASE, downloaded, write_adapter

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.hub.store import HubStore
from reconciler.sandbox.server import SandboxServer

sandbox = test_fireworks_cli.sandbox  # the fixtures: the sandbox with loads that take no time
sdk = test_fireworks_cli.sdk
REPO = "acme/fireworks-lora"
FILES = ("adapter_config.json", "adapter_model.safetensors")


@pytest.fixture
def hub(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The sandbox's Hub as HF_ENDPOINT, with a cache of the test's own; yields its URL."""
    monkeypatch.setenv("HF_ENDPOINT", sandbox.hub_url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN", DEFAULT_TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return sandbox.hub_url


def pushed(sandbox: SandboxServer, tmp_path: Path, rank: int = 16) -> tuple[Path, str]:
    """An adapter of rank `rank` pushed to REPO (tagged v1); its folder and commit."""
    folder = tmp_path / "adapter"
    write_adapter(folder, rank=rank, modules=("q_proj", "k_proj", "v_proj"))
    commit = HubStore(sandbox.data_dir).push(REPO, folder, tag="v1")
    return folder, commit


def config_with(tmp_path: Path, adapter: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "finetunes.yaml"
    config.write_text(
        "version: 1\nproviders:\n  fireworks:\n    account_id: ${FIREWORKS_ACCOUNT_ID}\n"
        "finetunes:\n  - name: remote-lora\n    provider: fireworks\n"
        f"    model: {BASE}\n    adapter:\n{adapter}"
    )
    return config


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def model_writes(sandbox: SandboxServer, since: int = 0) -> list[tuple[str, str]]:
    return [
        (m, p)
        for m, p in sandbox.request_log[since:]
        if m in ("POST", "PATCH", "DELETE") and f"/accounts/{ACCOUNT}/" in p
    ]


def applied_as_pushed(cli: Cli, sdk: Fireworks, config: Path, folder: Path) -> dict[str, object]:
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    model = sdk.models.get("remote-lora")
    assert (model.state, model.kind) == ("READY", "HF_PEFT_ADDON")
    assert model.peft_details is not None
    # peftDetails from the fetched adapter_config.json: rank and modules as pushed
    assert model.peft_details.r == 16
    assert list(model.peft_details.target_modules or []) == ["q_proj", "k_proj", "v_proj"]
    assert downloaded(sdk, "remote-lora") == {n: sha256(folder / n) for n in FILES}
    entry: dict[str, object] = json.loads(config.with_suffix(".lock").read_text())["finetunes"][
        "remote-lora"
    ]
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0
    return entry


def test_an_adapter_from_a_hub_repo_applies_with_peft_details_from_its_config(
    cli: Cli, sandbox: SandboxServer, hub: str, sdk: Fireworks, tmp_path: Path
) -> None:
    folder, commit = pushed(sandbox, tmp_path)
    config = config_with(tmp_path, f"      hf: {REPO}\n      revision: v1\n")
    entry = applied_as_pushed(cli, sdk, config, folder)
    assets = entry["assets"]
    assert isinstance(assets, dict)
    for name in FILES:
        assert assets[name]["source"] == f"hf://{REPO}@{commit}/{name}"
        assert assets[name]["sha256"] == sha256(folder / name)


def test_an_adapter_from_files_at_urls_applies_with_peft_details_from_its_config(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    folder, commit = pushed(sandbox, tmp_path)
    urls = {n: f"{sandbox.hub_url}/{REPO}/resolve/{commit}/{n}" for n in FILES}
    lines = "".join(
        f"          {n}:\n            url: {urls[n]}\n            sha256: "
        f"{sha256(folder / n).removeprefix('sha256:')}\n"
        for n in FILES
    )
    config = config_with(tmp_path, f"      files:\n{lines}")
    entry = applied_as_pushed(cli, sdk, config, folder)
    assets = entry["assets"]
    assert isinstance(assets, dict)
    assert {n: assets[n]["source"] for n in FILES} == urls
    assert httpx.get(urls["adapter_config.json"]).json()["r"] == 16


def test_a_remote_adapter_outside_fireworks_limits_makes_nothing(
    cli: Cli, sandbox: SandboxServer, hub: str, sdk: Fireworks, tmp_path: Path
) -> None:
    pushed(sandbox, tmp_path, rank=128)
    config = config_with(tmp_path, f"      hf: {REPO}\n      revision: v1\n")
    before = len(sandbox.request_log)
    applied = cli("apply", "-c", config, "--auto-approve")
    said = applied.output + applied.stderr
    assert applied.exit_code == 1, said
    assert "Fireworks takes a LoRA rank from 4 to 64" in said and '"r" is 128' in said
    assert model_writes(sandbox, before) == []  # refused before the create was sent
    assert list(sdk.models.list()) == []


def test_a_remote_adapter_outside_fireworks_limits_is_blocked_by_the_plan_at_its_line(
    cli: Cli, sandbox: SandboxServer, hub: str, tmp_path: Path
) -> None:
    """Before: a Hub adapter's rank and modules were first checked at apply; the plan now reads
    its adapter_config.json through the source, as a local folder's is read at load."""
    pushed(sandbox, tmp_path, rank=128)
    config = config_with(tmp_path, f"      hf: {REPO}\n      revision: v1\n")
    before = len(sandbox.request_log)
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    (said,) = [x for x in planned.stderr.splitlines() if '"r" is 128' in x]
    assert said.startswith(f"{config}:"), said  # at the finetune's line
    assert f"hf://{REPO}@" in said and "adapter_config.json" in said
    assert "Fireworks takes a LoRA rank from 4 to 64" in said
    assert model_writes(sandbox, before) == []
