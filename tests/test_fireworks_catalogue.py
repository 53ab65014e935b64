"""Fireworks' base catalogue in the plan: read live from accounts/fireworks/models, the bundled
snapshot (providers/fireworks/catalogue.json) when it cannot be read, and the config's
providers.fireworks.limits.lora_models on top of either. The CLI through click's runner
against the sandbox on 127.0.0.1, with a fault on the catalogue's route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from test_fireworks_cli import ACCOUNT, BASE, NO_LORA, project

from reconciler.providers.fireworks import catalogue, checks
from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.fireworks.catalogue import Catalogue as SandboxCatalogue
from reconciler.sandbox.server import SandboxServer

CATALOGUE_ROUTE = "GET /fireworks/v1/accounts/fireworks/models"
OPTIONS = {
    "fireworks_load_seconds": 0.0,
    "fireworks_deployment_seconds": 0.0,
    "fireworks_serverless_seconds": 0.0,
}


def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: str | None) -> SandboxServer:
    monkeypatch.setenv("RECONCILER_HTTP_BACKOFF", "0")
    spec = FaultSpec.from_option(faults) if faults else None
    server = SandboxServer(tmp_path / "sandbox-data", options=OPTIONS, faults=spec)
    return server


@pytest.fixture
def unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    """The sandbox, its base catalogue answering 503 every time."""
    with serve(tmp_path, monkeypatch, f"status=503; route={CATALOGUE_ROUTE}") as server:
        point(monkeypatch, server)
        yield server


@pytest.fixture
def readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with serve(tmp_path, monkeypatch, None) as server:
        point(monkeypatch, server)
        yield server


def point(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", DEFAULT_TOKEN)
    monkeypatch.setenv("FIREWORKS_BASE_URL", server.url + "/fireworks")
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", ACCOUNT)


def with_lora_models(config: Path, *bases: str) -> None:
    listed = "".join(f"        - {b}\n" for b in bases)
    text = config.read_text().replace(
        "    account_id: ${FIREWORKS_ACCOUNT_ID}\n",
        f"    account_id: ${{FIREWORKS_ACCOUNT_ID}}\n    limits:\n      lora_models:\n{listed}",
    )
    config.write_text(text)


def catalogue_reads(server: SandboxServer) -> list[str]:
    return [p for m, p in server.request_log if m == "GET" and p.endswith("/fireworks/models")]


def test_the_snapshot_holds_the_bases_the_sandbox_serves_with_the_same_facts() -> None:
    bundled = catalogue.snapshot_data()["models"]
    served = {b.name: b.record for b in SandboxCatalogue.bundled().all()}
    assert sorted(m["name"] for m in bundled) == sorted(served)
    for m in bundled:
        facts = (m["supportsLora"], m["supportsServerless"])
        assert facts == (served[m["name"]]["supportsLora"], served[m["name"]]["supportsServerless"])


def test_an_unreadable_catalogue_warns_once_and_the_snapshot_lets_a_lora_base_through(
    cli: Cli, unreadable: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path, serve=None)
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 0, planned.output
    assert "Plan: 1 to create" in planned.stdout
    notes = [line for line in planned.output.splitlines() if "could not be read" in line]
    assert len(notes) == 1, planned.output
    assert "the bundled snapshot of 2026-12-01" in notes[0]
    assert "accounts/fireworks/models" in notes[0] and "Workers AI" not in notes[0]
    refused = [f.path for f in unreadable.fault_log if f.status == 503]
    assert refused and set(refused) == {"/fireworks/v1/accounts/fireworks/models"}


def test_with_the_snapshot_a_base_without_lora_is_blocked_naming_the_override(
    cli: Cli, unreadable: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path, model=NO_LORA, serve=None)
    planned = cli("plan", "-c", config)
    said = planned.output
    assert planned.exit_code == 1, said
    assert f"model {NO_LORA} does not take LoRA adapters" in said
    assert "the bundled snapshot of Fireworks' base models" in said
    assert "providers.fireworks.limits.lora_models (a list of base models)" in said
    assert "model: model_type" not in said


@pytest.mark.parametrize("live", [True, False], ids=["live", "snapshot"])
def test_the_config_override_wins_over_the_catalogue(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live: bool
) -> None:
    faults = None if live else f"status=503; route={CATALOGUE_ROUTE}"
    with serve(tmp_path, monkeypatch, faults) as server:
        point(monkeypatch, server)
        config = project(tmp_path, model=NO_LORA, serve=None)
        with_lora_models(config, NO_LORA)
        planned = cli("plan", "-c", config)
        assert planned.exit_code == 0, planned.output
        assert "Plan: 1 to create" in planned.stdout
        assert "does not take LoRA" not in planned.output


def test_a_live_catalogue_names_itself_and_the_override(
    cli: Cli, readable: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path, model=NO_LORA, serve=None)
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1
    assert "Fireworks' base model catalogue (accounts/fireworks/models)" in planned.output
    assert "providers.fireworks.limits.lora_models" in planned.output
    assert "could not be read" not in planned.output
    ok = cli("plan", "-c", project(tmp_path / "b", model=BASE, serve=None))
    assert ok.exit_code == 0, ok.output


def test_a_lora_models_override_that_is_not_a_model_name_is_refused_at_load(
    cli: Cli, readable: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path, serve=None)
    with_lora_models(config, "deepseek-v3p1")
    checked = cli("validate", "-c", config)
    assert checked.exit_code != 0
    assert "lora_models" in checked.output + checked.stderr
    with pytest.raises(Exception, match="not a base model's resource name"):
        checks.limits({"lora_models": ["deepseek-v3p1"]})
    assert checks.limits({"lora_models": [NO_LORA]}).lora_models == (NO_LORA,)
