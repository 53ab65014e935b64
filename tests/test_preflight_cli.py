"""Pre-flight checks as users meet them: in validate and plan, at the config's line, before
any remote call; limits overridable per provider in the config."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli

from reconciler.sandbox.server import SandboxServer


def posts(sandbox: SandboxServer) -> int:
    return len([c for c in sandbox.request_log if c[0] == "POST"])


def test_truncated_weights_are_caught_before_upload(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    weights = project.parent / "adapters" / "faq-v1" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    for command in ("validate", "plan"):
        result = cli(command, "-c", project)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[0] == (
            f"{project}:25:14: error: finetune 'faq-bot-v1': adapters/faq-v1/"
            "adapter_model.safetensors: is truncated: the header describes 2048 bytes of tensor "
            "data but only 1948 follow it (100 bytes missing)"
        )
    assert [c for c in cf_env.request_log if "/accounts/" in c[1]] == []


def test_non_lora_model_is_a_warning_offline_and_blocked_by_the_plan(
    cli: Cli, project: Path, cf_env: SandboxServer
) -> None:
    project.write_text(project.read_text().replace("gemma-2b-it-lora", "gemma-2b-it"))
    result = cli("validate", "-c", project)
    assert result.exit_code == 0  # offline, the bundled snapshot may be out of date
    assert result.stderr.splitlines()[0].startswith(
        f"{project}:23:12: warning: finetune 'faq-bot-v1': model @cf/google/gemma-2b-it is not "
        "among the LoRA-capable models of the bundled snapshot ("
    )
    assert "(did you mean @cf/google/gemma-2b-it-lora?)" in result.stderr
    planned = cli("plan", "-c", project)
    assert planned.exit_code == 1
    assert "model @cf/google/gemma-2b-it " in planned.stdout
    assert "does not take LoRA adapters" in planned.stdout or "is not in" in planned.stdout
    assert posts(cf_env) == 0


def test_limits_are_overridable_in_the_config(
    cli: Cli, project: Path, cf_env: SandboxServer
) -> None:
    text = project.read_text()
    project.write_text(
        text.replace("    account_id:", "    limits: {max_lora_rank: 2}\n    account_id:")
    )
    tight = cli("validate", "-c", project)
    assert tight.exit_code == 1
    assert '"r" is 4, over the provider\'s rank limit of 2' in tight.stderr
    project.write_text(
        text.replace("    account_id:", "    limits: {max_lora_rank: 16}\n    account_id:")
    )
    assert cli("validate", "-c", project).exit_code == 0
    project.write_text(
        text.replace("gemma-2b-it-lora", "gemma-9b-it-new").replace(
            "    account_id:",
            '    limits: {lora_models: {"@cf/google/gemma-9b-it-new": gemma}}\n    account_id:',
        )
    )
    assert (
        cli("validate", "-c", project).exit_code == 0
    )  # a model Cloudflare added, declared as data
    project.write_text(
        text.replace("    account_id:", "    limits: {max_rank: 2}\n    account_id:")
    )
    unknown = cli("validate", "-c", project)
    assert unknown.exit_code == 1
    assert "providers.cloudflare.limits.max_rank: unknown key 'max_rank'" in unknown.stderr


def test_account_capacity_is_checked_before_any_create(
    cli: Cli, project: Path, cf_env: SandboxServer
) -> None:
    text = project.read_text()
    project.write_text(
        text.replace(
            "    account_id:", "    limits: {max_finetunes_per_account: 1}\n    account_id:"
        )
    )
    result = cli("apply", "-c", project, "--auto-approve")
    assert result.exit_code == 1
    assert (
        "holds 0 finetunes and the plan creates 2: 2 would exceed the limit of 1 per account by 1"
        in result.stderr
    )
    assert posts(cf_env) == 0
    assert not project.with_suffix(".lock").exists()


def test_a_plan_that_fills_an_account_to_80_percent_warns(
    cli: Cli, project: Path, cf_env: SandboxServer
) -> None:
    text = project.read_text()
    project.write_text(
        text.replace(
            "    account_id:", "    limits: {max_finetunes_per_account: 2}\n    account_id:"
        )
    )
    result = cli("plan", "-c", project)
    assert result.exit_code == 0, result.output
    assert "will hold 2 of its 2 finetunes (100 %): every version counts" in result.stdout
