"""A vLLM fleet reconciled end to end: the CLI against the sandbox's emulated servers on
127.0.0.1 (two replicas under /vllm/<i>), with the adapter store in a temp folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Cli
from test_vllm_client import MODEL, write_adapter

from reconciler.base.model import AssetFile
from reconciler.providers import registry
from reconciler.providers.vllm.api import BLOBS
from reconciler.providers.vllm.store import StoreError
from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer
from reconciler.workflow.session import open_providers

LOAD, UNLOAD = "/v1/load_lora_adapter", "/v1/unload_lora_adapter"


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "sandbox-data", options={"vllm_replicas": 2}) as server:
        servers = ",".join(f"{server.url}/vllm/{i}" for i in range(2))
        monkeypatch.setenv("VLLM_SERVERS", servers)
        monkeypatch.delenv("VLLM_API_KEY", raising=False)
        yield server


def project(tmp_path: Path, rank: int = 8, max_rank: int | None = None) -> Path:
    folder = tmp_path / "project"
    write_adapter(folder / "adapters" / "support", rank=rank)
    limit = f"    max_lora_rank: {max_rank}\n" if max_rank else ""
    config = folder / "finetunes.yaml"
    config.write_text(
        "version: 1\nproviders:\n  vllm:\n    store: store\n"
        + limit
        + "finetunes:\n  - name: support-lora\n    provider: vllm\n"
        f"    model: {MODEL}\n    adapter: adapters/support/\n"
    )
    (folder / "store").mkdir()
    return config


def models(server: SandboxServer, i: int) -> dict[str, dict[str, object]]:
    answer = httpx.get(f"{server.url}/vllm/{i}/v1/models").json()
    return {card["id"]: card for card in answer["data"]}


def control(server: SandboxServer, i: int, what: str) -> None:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    answer = httpx.post(f"{server.url}/vllm/{i}/_sandbox/{what}", headers=headers)
    assert answer.status_code == 200, answer.text


def current_name(cli: Cli, config: Path) -> str:
    result = cli("output", "-c", config, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (entry,) = data.values() if isinstance(data, dict) else data
    name = entry["name"] if isinstance(entry, dict) else entry
    return str(name)


def writes(server: SandboxServer, since: int) -> list[str]:
    return [p for m, p in server.request_log[since:] if m == "POST" and p.endswith("_adapter")]


def test_apply_loads_on_every_server_from_the_store(
    cli: Cli, fleet: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    name = current_name(cli, config)
    local = config.parent / "adapters" / "support" / "adapter_model.safetensors"
    for i in range(2):
        card = models(fleet, i)[name]
        assert card["parent"] == MODEL
        root = Path(str(card["root"]))
        assert root.parent == config.parent / "store"
        placed = (root / "adapter_model.safetensors").read_bytes()
        assert hashlib.sha256(placed).digest() == hashlib.sha256(local.read_bytes()).digest()
    again = cli("plan", "-c", config, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_a_restarted_server_is_drift_and_apply_heals_it_alone(
    cli: Cli, fleet: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path)
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    control(fleet, 1, "restart")
    drift = cli("drift", "-c", config)
    assert drift.exit_code == 2, drift.output
    assert f"{fleet.url}/vllm/1" in drift.output
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 2
    before = len(fleet.request_log)
    healed = cli("apply", "-c", config, "--auto-approve")
    assert healed.exit_code == 0, healed.output
    assert writes(fleet, before) == ["/vllm/1" + LOAD]  # nothing sent to the healthy one
    name = current_name(cli, config)
    assert name in models(fleet, 0) and name in models(fleet, 1)
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_an_adapter_loaded_by_hand_is_unmanaged_and_left_alone(
    cli: Cli, fleet: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path)
    by_hand = write_adapter(tmp_path / "by-hand")
    body = {"lora_name": "by-hand", "lora_path": str(by_hand)}
    assert httpx.post(f"{fleet.url}/vllm/0{LOAD}", json=body).status_code == 200
    planned = cli("plan", "-c", config)
    assert "by-hand" in planned.output and "unmanaged" in planned.output.lower()
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    assert "by-hand" in models(fleet, 0)


def test_new_weights_load_under_a_new_name_before_the_old_one_is_unloaded(
    cli: Cli, fleet: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path)
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    old = current_name(cli, config)
    write_adapter(config.parent / "adapters" / "support", fill=0.5)
    before = len(fleet.request_log)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    new = current_name(cli, config)
    assert new != old
    for i in range(2):
        assert new in models(fleet, i) and old not in models(fleet, i)
    sent = writes(fleet, before)
    loads = [n for n, p in enumerate(sent) if p.endswith(LOAD)]
    unloads = [n for n, p in enumerate(sent) if p.endswith(UNLOAD)]
    assert len(loads) == 2 and len(unloads) == 2
    assert max(loads) < min(unloads)  # both loaded before either unload
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_a_rank_above_the_servers_max_is_refused_before_any_request(
    cli: Cli, fleet: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path, rank=32, max_rank=16)
    before = len(fleet.request_log)
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1
    assert '"r" is 32, over the provider\'s rank limit of 16; retrain with r <= 16' in (
        planned.stderr
    )
    assert fleet.request_log[before:] == []


def test_an_uploaded_file_gone_from_the_store_is_named_not_a_path_error(
    fleet: SandboxServer, tmp_path: Path
) -> None:
    """Before: the create assembled the folder from a stand-in path, and said so
    ("/nonexistent: No such file or directory")."""
    config = project(tmp_path)
    env = dict(os.environ)
    desired = registry.load_config(config, env)
    (d,) = desired.finetunes
    with open_providers(config, env, None, desired) as providers:
        api = providers["vllm"]
        uploaded = {
            a.name: api.upload_asset(d.account, None, AssetFile(a.name, a.path)) for a in d.assets
        }
        for blob in (config.parent / "store").glob(f"{BLOBS}-*"):
            shutil.rmtree(blob)  # removed by hand since the upload
        with pytest.raises(StoreError) as caught:
            api.create_finetune(d, uploaded)
    said = str(caught.value)
    assert "lacks the uploaded adapter_config.json" in said
    assert uploaded["adapter_config.json"].sha256 in said and "apply again" in said
    assert "nonexistent" not in said


def test_a_server_that_is_down_fails_alone_and_the_next_apply_heals_it(
    cli: Cli, fleet: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path)
    control(fleet, 1, "down")
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 1, applied.output
    assert f"{fleet.url}/vllm/1" in applied.output + applied.stderr
    name = current_name(cli, config)
    assert name in models(fleet, 0)
    control(fleet, 1, "up")
    healed = cli("apply", "-c", config, "--auto-approve")
    assert healed.exit_code == 0, healed.output
    assert name in models(fleet, 1)
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_checks_run_against_every_server(cli: Cli, fleet: SandboxServer, tmp_path: Path) -> None:
    config = project(tmp_path)
    config.write_text(
        config.read_text() + "    checks:\n      - name: greets\n        prompt: Hello there\n"
        "        expect: {contains: Thanks}\n"
    )
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    before = len(fleet.request_log)
    tested = cli("test", "-c", config)
    assert tested.exit_code == 0, tested.output
    asked = [p for m, p in fleet.request_log[before:] if p.endswith("/chat/completions")]
    assert sorted(asked) == [f"/vllm/{i}/v1/chat/completions" for i in range(2)]
    control(fleet, 1, "down")
    failed = cli("test", "-c", config)
    assert failed.exit_code == 1
    assert f"{fleet.url}/vllm/1" in failed.output + failed.stderr


def test_list_shows_the_fleet_as_a_matrix(cli: Cli, fleet: SandboxServer, tmp_path: Path) -> None:
    config = project(tmp_path)
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    control(fleet, 1, "restart")
    listed = cli("list", "-c", config)
    assert listed.exit_code == 0, listed.output
    name = current_name(cli, config)
    lines = listed.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("adapter "))
    assert f"{fleet.url}/vllm/0" in lines[at] and f"{fleet.url}/vllm/1" in lines[at]
    row = next(line for line in lines[at:] if line.startswith(name + " "))
    assert row.split()[1:] == ["loaded", "-"]
    data = json.loads(cli("list", "-c", config, "--format", "json").stdout)
    (held,) = data["finetunes"]
    assert held["placement"] == {f"{fleet.url}/vllm/0": True, f"{fleet.url}/vllm/1": False}
