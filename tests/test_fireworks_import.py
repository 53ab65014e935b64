"""`reconciler import` of a Fireworks model compares the local files' digest with the digest
marker of the model's description (marker.py): the same is recorded verified, another is
refused, none is recorded unverified, saying why. The CLI through click's runner against the
sandbox on 127.0.0.1; the official SDK makes a model without a marker."""

from __future__ import annotations

import json
from pathlib import Path

import test_fireworks_cli
from conftest import Cli
from fireworks import Fireworks
from test_fireworks_cli import BASE, lock_of, project, write_adapter

from reconciler.sandbox.server import SandboxServer

sandbox = test_fireworks_cli.sandbox  # the fixtures: the sandbox with loads that take no time
sdk = test_fireworks_cli.sdk
NAME = "support-lora"


def applied_then_forgotten(cli: Cli, tmp_path: Path) -> Path:
    config = project(tmp_path, serve=None)
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    assert cli("forget", NAME, "-c", config).exit_code == 0
    assert NAME not in lock_of(config)["finetunes"]
    return config


def test_a_model_whose_marker_matches_the_local_files_is_imported_verified(
    cli: Cli, sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = applied_then_forgotten(cli, tmp_path)
    imported = cli("import", NAME, "-c", config)
    assert imported.exit_code == 0, imported.output
    assert "assets verified: fireworks finetune support-lora states the local files' digest" in (
        imported.stdout
    )
    entry = lock_of(config)["finetunes"][NAME]
    assert entry["id"] == NAME
    assert all(a.get("verified", True) for a in entry["assets"].values())
    planned = cli("plan", "-c", config, "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "unverified" not in planned.output


def test_a_model_of_other_files_is_refused_saying_both_digests(
    cli: Cli, sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = applied_then_forgotten(cli, tmp_path)
    write_adapter(config.parent / "adapters" / "support", fill=5)  # other weights now
    imported = cli("import", NAME, "-c", config)
    said = imported.output + imported.stderr
    assert imported.exit_code == 1, said
    assert "was made of other files than support-lora's local ones" in said
    assert said.count("sha256:") >= 2 and "Nothing was imported" in said
    assert NAME not in lock_of(config)["finetunes"]
    # --confirm asserts what the model's own record contradicts: refused too
    assert cli("import", NAME, "-c", config, "--confirm").exit_code == 1


def test_a_model_without_a_marker_is_imported_unverified_saying_why(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    config = project(tmp_path, serve=None)
    folder = config.parent / "adapters" / "support"
    adapter = json.loads((folder / "adapter_config.json").read_text())
    peft = {"baseModel": BASE, "r": adapter["r"], "targetModules": adapter["target_modules"]}
    # made by hand with the SDK: its description carries no digest marker
    sdk.models.create(
        model_id=NAME,
        model={"kind": "HF_PEFT_ADDON", "description": "Support tone adapter", "peftDetails": peft},
    )
    imported = cli("import", NAME, "-c", config)
    assert imported.exit_code == 0, imported.output
    out = imported.stdout
    assert "assets unverified: fireworks finetune support-lora states no digest of its files" in (
        out
    )
    assert "confirm with `reconciler import support-lora --confirm`" in out
    assets = lock_of(config)["finetunes"][NAME]["assets"]
    assert sorted(n for n, a in assets.items() if a.get("verified") is False) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    confirmed = cli("import", NAME, "-c", config, "--confirm")
    assert confirmed.exit_code == 0, confirmed.output
    assert "assets verified: fireworks finetune support-lora states no digest" in confirmed.stdout
    assets = lock_of(config)["finetunes"][NAME]["assets"]
    assert all(a.get("verified", True) for a in assets.values())
