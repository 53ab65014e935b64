"""Three serverless adapters per base model and account (Fireworks' docs: the fourth load is
ResourceExhausted), counted by the plan (plan/quotas.py, from Capabilities.quotas): what the
account holds, plus what the plan loads, less what it unloads first. The CLI through click's
runner against the sandbox on 127.0.0.1; the official SDK looks at what was made."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import test_fireworks_cli
from conftest import Cli
from fireworks import Fireworks
from test_fireworks_cli import write_adapter

from reconciler.sandbox.server import SandboxServer

sandbox = test_fireworks_cli.sandbox  # the fixtures: the sandbox with loads that take no time
sdk = test_fireworks_cli.sdk

GLM = "accounts/fireworks/models/glm-5p3-flash"  # the base of serverless LoRA
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def bots(tmp_path: Path, numbers: Iterable[int], fills: dict[int, int] | None = None) -> Path:
    """A config of serverless adapters bot-N on GLM, each with weights of its own."""
    folder = tmp_path / "project"
    lines = ["version: 1", "finetunes:"]
    for i in numbers:
        write_adapter(folder / "adapters" / f"a{i}", fill=(fills or {}).get(i, i + 1))
        lines += [
            f"  - name: bot-{i}",
            "    provider: fireworks",
            f"    model: {GLM}",
            f"    adapter: adapters/a{i}/",
            "    serve: {serverless: true}",
        ]
    config = folder / "finetunes.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def served(sdk: Fireworks) -> list[str]:
    """The models loaded serverless, by id."""
    return sorted((c.model or "").rsplit("/", 1)[-1] for c in sdk.lora.list() if c.serverless)


def writes(server: SandboxServer, since: int) -> list[tuple[str, str]]:
    return [(m, p) for m, p in server.request_log[since:] if m in WRITES]


def three_served(cli: Cli, sdk: Fireworks, tmp_path: Path) -> list[str]:
    applied = cli("apply", "-c", bots(tmp_path, range(3)), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    held = served(sdk)
    assert len(held) == 3
    return held


def test_a_fourth_is_blocked_at_plan_naming_the_three_and_nothing_is_written(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    held = three_served(cli, sdk, tmp_path)
    config = bots(tmp_path, range(4))
    before = len(sandbox.request_log)
    planned = cli("plan", "-c", config, "--detailed-exitcode")
    said = planned.output
    assert planned.exit_code == 1, said
    assert "Fireworks serves at most 3 serverless adapters per base model" in said
    assert f"{GLM} has 3 in account" in said and "ResourceExhausted" in said
    assert all(name in said for name in held)
    assert "1 blocked" in said
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 1
    assert writes(sandbox, before) == []  # neither the plan nor the refused apply wrote
    assert len(list(sdk.models.list())) == 3 and served(sdk) == held


def test_two_held_and_two_added_the_second_is_blocked_naming_the_first_too(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    assert cli("apply", "-c", bots(tmp_path, range(2)), "--auto-approve").exit_code == 0
    held = served(sdk)
    planned = cli("plan", "-c", bots(tmp_path, range(4)))
    assert planned.exit_code == 1
    blocked = [line for line in planned.output.splitlines() if "serves at most 3" in line]
    assert len(blocked) == 1 and blocked[0].lstrip().startswith("# bot-3 ")
    assert all(name in blocked[0] for name in held)
    assert "bot-2" in blocked[0] and "(planned)" in blocked[0]


def test_one_removed_with_prune_makes_room_for_another(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    three_served(cli, sdk, tmp_path)
    config = bots(tmp_path, (0, 1, 3))
    planned = cli("plan", "-c", config, "--prune")
    assert planned.exit_code == 0, planned.output
    assert "serves at most" not in planned.output
    before = len(sandbox.request_log)
    applied = cli("apply", "-c", config, "--prune", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert len(served(sdk)) == 3 and not any(m.startswith("bot-2") for m in served(sdk))
    # the removal first (apply/runner: finetunes going away, then the rest), so the slot it
    # frees is free before bot-3 asks for one: no race for it
    sent = writes(sandbox, before)
    gone = max(i for i, (m, p) in enumerate(sent) if m == "DELETE" and "bot-2" in p)
    made = min(i for i, (m, p) in enumerate(sent) if m == "POST" and p.endswith("/models"))
    assert gone < made, sent
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0
    # without --prune bot-2 is only forgotten, still loaded: no room
    refused = cli("plan", "-c", bots(tmp_path / "again", (0, 1, 4)))
    assert refused.exit_code == 1 and "serves at most 3" in refused.output


def test_new_weights_for_a_full_base_are_blocked_as_the_old_one_stays_loaded_until_then(
    cli: Cli, sandbox: SandboxServer, sdk: Fireworks, tmp_path: Path
) -> None:
    held = three_served(cli, sdk, tmp_path)
    config = bots(tmp_path, range(3), fills={2: 99})
    planned = cli("plan", "-c", config)
    said = planned.output
    assert planned.exit_code == 1, said
    assert "# bot-2 " in said and "serves at most 3" in said
    assert all(name in said for name in held)
    assert "superseded" not in said  # the delete that was to follow the new version is left out
