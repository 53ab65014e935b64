"""Frictions a new user met (issue 21), each reproduced through the CLI against the sandbox."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli

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
