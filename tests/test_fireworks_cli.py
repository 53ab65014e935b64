"""Fireworks AI reconciled end to end: the CLI through click's runner against the sandbox's
emulated Fireworks API on 127.0.0.1 (FIREWORKS_BASE_URL), and the official `fireworks` SDK,
unchanged, looking at what was made."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Cli
from fireworks import Fireworks
from test_fireworks_api import safetensors

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer

ACCOUNT = "reconciler-sandbox"
BASE = "accounts/fireworks/models/llama-v3p1-8b-instruct"
NO_LORA = "accounts/fireworks/models/deepseek-v3p1"
PROD = f"accounts/{ACCOUNT}/deployments/prod"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    options = {
        "fireworks_load_seconds": 0.0,
        "fireworks_deployment_seconds": 0.0,
        "fireworks_serverless_seconds": 0.0,
    }
    with SandboxServer(tmp_path / "sandbox-data", options=options) as server:
        monkeypatch.setenv("FIREWORKS_API_KEY", DEFAULT_TOKEN)
        monkeypatch.setenv("FIREWORKS_BASE_URL", server.url + "/fireworks")
        monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", ACCOUNT)
        monkeypatch.setenv("RECONCILER_POLL_INTERVAL", "0.02")
        yield server


@pytest.fixture
def sdk(sandbox: SandboxServer) -> Iterator[Fireworks]:
    client = Fireworks(
        api_key=DEFAULT_TOKEN, account_id=ACCOUNT, base_url=sandbox.url + "/fireworks"
    )
    yield client
    client.close()


def write_adapter(
    folder: Path, rank: int = 8, modules: tuple[str, ...] = ("q_proj", "v_proj"), fill: int = 0
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"r": rank, "target_modules": list(modules), "peft_type": "LORA"}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    weights = safetensors(rank, modules)
    if fill:  # other weights of the same shape
        weights = weights[:-4] + fill.to_bytes(4, "little")
    (folder / "adapter_model.safetensors").write_bytes(weights)


def project(
    tmp_path: Path,
    *,
    serve: str | None = "{deployment: prod}",
    model: str = BASE,
    versioning: str | None = None,
    **adapter: Any,
) -> Path:
    folder = tmp_path / "project"
    write_adapter(folder / "adapters" / "support", **adapter)
    config = folder / "finetunes.yaml"
    config.write_text(
        "version: 1\nproviders:\n  fireworks:\n    account_id: ${FIREWORKS_ACCOUNT_ID}\n"
        "finetunes:\n  - name: support-lora\n    provider: fireworks\n"
        f"    model: {model}\n    adapter: adapters/support/\n"
        "    description: Support tone adapter\n"
        + (f"    serve: {serve}\n" if serve else "")
        + (f"    versioning: {versioning}\n" if versioning else "")
    )
    return config


def make_deployment(sdk: Fireworks, base: str = BASE, addons: bool = True) -> None:
    sdk.deployments.create(base_model=base, deployment_id="prod", enable_addons=addons)


def lock_of(config: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(config.with_suffix(".lock").read_text())
    return data


def current(config: Path) -> tuple[str, dict[str, Any]]:
    """The current model's id and its lock entry: a first model bears the bare name (no
    remote_name recorded), a later one, or any with versioning: content, NAME-<8 hex>."""
    entry = lock_of(config)["finetunes"]["support-lora"]
    return str(entry.get("remote_name") or "support-lora"), entry


def hashed(name: str) -> bool:
    head, _, tail = name.rpartition("-")
    return head == "support-lora" and len(tail) == 8 and all(c in "0123456789abcdef" for c in tail)


def downloaded(sdk: Fireworks, model_id: str) -> dict[str, str]:
    urls = sdk.models.get_download_endpoint(model_id).filename_to_signed_urls or {}
    return {
        name: "sha256:" + hashlib.sha256(httpx.get(url).content).hexdigest()
        for name, url in urls.items()
    }


def loaded(sdk: Fireworks) -> list[tuple[str, str | None, str | None]]:
    return [(c.model or "", c.deployment, c.state) for c in sdk.lora.list()]


@pytest.mark.parametrize("versioning", [None, "content"])
def test_an_adapter_applies_validated_and_deployed_where_serve_says(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path, versioning: str | None
) -> None:
    make_deployment(sdk)
    config = project(tmp_path, rank=16, versioning=versioning)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    name, entry = current(config)
    # the model id: the finetune's name, or NAME-<8 hex> with versioning: content
    assert hashed(name) if versioning else name == "support-lora"
    model = sdk.models.get(name)
    assert (model.state, model.kind) == ("READY", "HF_PEFT_ADDON")
    assert model.peft_details is not None and model.peft_details.r == 16
    assert model.display_name == name
    assert "reconciler:sha256=" in (model.description or "")
    recorded = {n: a["sha256"] for n, a in entry["assets"].items()}
    assert downloaded(sdk, name) == recorded
    assert loaded(sdk) == [(f"accounts/{ACCOUNT}/models/{name}", PROD, "DEPLOYED")]
    again = cli("plan", "-c", config, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("versioning", [None, "content"])
def test_new_weights_are_loaded_before_the_old_model_is_unloaded_and_deleted(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path, versioning: str | None
) -> None:
    """Without versioning the first model bears the bare name; the new one, made while the
    old one still holds it, is NAME-<8 hex> (create before destroy)."""
    make_deployment(sdk)
    config = project(tmp_path, versioning=versioning)
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    old, _ = current(config)
    assert hashed(old) if versioning else old == "support-lora"
    write_adapter(config.parent / "adapters" / "support", fill=7)
    before = len(sandbox.request_log)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    new, entry = current(config)
    assert new != old and hashed(new)
    weights = config.parent / "adapters" / "support" / "adapter_model.safetensors"
    sha = "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    assert downloaded(sdk, new)["adapter_model.safetensors"] == sha
    assert entry["assets"]["adapter_model.safetensors"]["sha256"] == sha
    assert loaded(sdk) == [(f"accounts/{ACCOUNT}/models/{new}", PROD, "DEPLOYED")]
    assert [m.name for m in sdk.models.list()] == [f"accounts/{ACCOUNT}/models/{new}"]
    sent = [(m, p) for m, p in sandbox.request_log[before:] if m in ("POST", "DELETE")]
    load = sent.index(("POST", f"/fireworks/v1/accounts/{ACCOUNT}/deployedModels"))
    unload = next(i for i, (m, p) in enumerate(sent) if m == "DELETE" and "/deployedModels/" in p)
    delete = sent.index(("DELETE", f"/fireworks/v1/accounts/{ACCOUNT}/models/{old}"))
    assert load < unload < delete
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    ("adapter", "limit"),
    [({"rank": 128}, "from 4 to 64"), ({"modules": ("q_proj", "lm_head")}, "lm_head")],
)
def test_a_rank_or_module_outside_fireworks_limits_is_refused_before_any_request(
    cli: Cli, sandbox: SandboxServer, tmp_path: Path, adapter: dict[str, Any], limit: str
) -> None:
    config = project(tmp_path, **adapter)
    before = len(sandbox.request_log)
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1
    said = planned.output + planned.stderr
    assert limit in said and "Fireworks takes" in said
    assert sandbox.request_log[before:] == []


def test_a_base_without_lora_is_blocked_by_the_plan(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    config = project(tmp_path, model=NO_LORA, serve=None)
    planned = cli("plan", "-c", config, "--detailed-exitcode")
    said = planned.output + planned.stderr
    assert planned.exit_code != 0 and planned.exit_code != 2, said
    assert "does not take LoRA adapters" in said
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code != 0
    assert list(sdk.models.list()) == []


def test_a_deployment_without_addons_makes_nothing(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    make_deployment(sdk, addons=False)
    config = project(tmp_path)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 1
    assert "enableAddons" in applied.output + applied.stderr
    assert list(sdk.models.list()) == []


def test_without_serve_the_model_is_ready_and_not_loaded(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    config = project(tmp_path, serve=None)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    name, _ = current(config)
    assert sdk.models.get(name).state == "READY"
    assert loaded(sdk) == []
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_a_copy_unloaded_by_hand_is_drift_and_apply_loads_it_again(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    make_deployment(sdk)
    config = project(tmp_path)
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    (copy,) = list(sdk.lora.list())
    sdk.lora.unload((copy.name or "").rsplit("/", 1)[-1])
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 2
    healed = cli("apply", "-c", config, "--auto-approve")
    assert healed.exit_code == 0, healed.output
    name, _ = current(config)
    assert loaded(sdk) == [(f"accounts/{ACCOUNT}/models/{name}", PROD, "DEPLOYED")]
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


SERVERLESS_BASE = "accounts/fireworks/models/glm-5p3-flash"


def serverless_project(tmp_path: Path, count: int) -> Path:
    folder = tmp_path / "project"
    lines = ["version: 1", "finetunes:"]
    for i in range(count):
        write_adapter(folder / "adapters" / f"a{i}", fill=i + 1)
        lines += [
            f"  - name: bot-{i}",
            "    provider: fireworks",
            f"    model: {SERVERLESS_BASE}",
            f"    adapter: adapters/a{i}/",
            "    serve: {serverless: true}",
        ]
    config = folder / "finetunes.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def test_serverless_adapters_load_and_a_fourth_per_base_is_refused_before_it_is_made(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    config = serverless_project(tmp_path, 3)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    copies = list(sdk.lora.list())
    assert len(copies) == 3 and all(c.serverless and c.state == "DEPLOYED" for c in copies)
    config = serverless_project(tmp_path, 4)
    refused = cli("apply", "-c", config, "--auto-approve")
    said = refused.output + refused.stderr
    assert refused.exit_code == 1
    assert "at most 3 serverless adapters per base model" in said and "ResourceExhausted" in said
    assert len(list(sdk.models.list())) == 3  # the fourth was never made


def test_serverless_on_a_base_that_offers_none_makes_nothing(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    config = project(tmp_path, serve="{serverless: true}")
    refused = cli("apply", "-c", config, "--auto-approve")
    assert refused.exit_code == 1
    assert "serverless LoRA is not offered on" in refused.output + refused.stderr
    assert list(sdk.models.list()) == []


def test_sandbox_flag_points_fireworks_at_the_embedded_sandbox(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FIREWORKS_API_KEY", "FIREWORKS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "my-real-team")  # not the sandbox's: replaced
    config = project(tmp_path, serve=None)
    text = config.read_text().replace(
        "providers:\n  fireworks:\n    account_id: ${FIREWORKS_ACCOUNT_ID}\n", ""
    )
    config.write_text(text)
    applied = cli("apply", "-c", config, "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    name, entry = current(config)
    assert entry["account"] == ACCOUNT and name == "support-lora"
    again = cli("plan", "-c", config, "--sandbox", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_checks_ask_the_deployed_adapter_before_it_becomes_current_and_test_asks_again(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    """With versioning: content every model passes the promotion gate (a first model with
    the bare name has no version before it to keep current: `reconciler test` asks it)."""
    make_deployment(sdk)
    config = project(tmp_path, versioning="content")
    config.write_text(
        config.read_text()
        + "    checks:\n      - name: thanks\n        prompt: My order is late\n"
        + "        expect: {contains: Thanks for asking}\n"
    )
    before = len(sandbox.request_log)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "check: 1 passed" in applied.output
    asked = [p for m, p in sandbox.request_log[before:] if p.endswith("/chat/completions")]
    assert asked == ["/fireworks/inference/v1/chat/completions"]
    tested = cli("test", "-c", config)
    assert tested.exit_code == 0, tested.output
    assert "thanks" in tested.output


def test_a_bare_named_model_is_what_drift_list_output_test_and_import_name(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    make_deployment(sdk)
    config = project(tmp_path)
    config.write_text(
        config.read_text()
        + "    checks:\n      - name: thanks\n        prompt: My order is late\n"
        + "        expect: {contains: Thanks for asking}\n"
        + "outputs:\n  - path: models.json\n"
    )
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert sdk.models.get("support-lora").state == "READY"
    assert cli("drift", "-c", config).exit_code == 0
    listed = cli("list", "-c", config)
    assert listed.exit_code == 0 and "support-lora" in listed.output, listed.output
    out = json.loads(cli("output", "-c", config, "--format", "json").stdout)
    assert out["support-lora"]["name"] == "support-lora"
    assert json.loads((config.parent / "models.json").read_text()) == out
    before = len(sandbox.request_log)
    tested = cli("test", "-c", config)
    assert tested.exit_code == 0, tested.output
    asked = [p for m, p in sandbox.request_log[before:] if p.endswith("/chat/completions")]
    assert asked == ["/fireworks/inference/v1/chat/completions"]
    assert cli("forget", "support-lora", "-c", config).exit_code == 0
    imported = cli("import", "support-lora", "-c", config)
    assert imported.exit_code == 0, imported.output
    name, entry = current(config)
    assert name == "support-lora" and entry["id"] == "support-lora"
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_a_leftover_is_kept_without_pruning_and_deleted_with_it(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    """A rename without --prune forgets the old model and keeps it as a leftover (not drift);
    `apply --prune` then deletes it, and the lockfile's leftover with it."""
    config = project(tmp_path, serve=None)
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    config.write_text(config.read_text().replace("name: support-lora", "name: support-lora-2"))
    renamed = cli("apply", "-c", config, "--auto-approve")
    assert renamed.exit_code == 0, renamed.output
    assert [x["name"] for x in lock_of(config)["leftovers"]] == ["support-lora"]
    assert cli("drift", "-c", config).exit_code == 0
    planned = cli("plan", "-c", config, "--prune")
    assert "# support-lora will be deleted: a leftover of support-lora" in planned.stdout
    pruned = cli("apply", "-c", config, "--auto-approve", "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert "support-lora: delete_leftover: deleted the leftover" in pruned.output
    assert "Apply complete: 0 created, 1 deleted, 0 uploaded, 0 forgotten." in pruned.output
    assert [m.name.rsplit("/", 1)[-1] for m in sdk.models.list()] == ["support-lora-2"]
    assert "leftovers" not in lock_of(config)
    assert cli("plan", "-c", config, "--prune", "--detailed-exitcode").exit_code == 0
