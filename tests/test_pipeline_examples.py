"""The pipeline examples call reconciler the way this version of it parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from conftest import ROOT

from reconciler.cli.main import main

WORKFLOW = ROOT / "examples" / "github-actions" / "reconciler.yml"


def reconciler_commands() -> list[str]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    runs = [
        step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
    ]
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    lines = [line.strip() for run in runs for line in run.splitlines()]
    found = [re.sub(r"\s*>.*$", "", line) for line in lines if line.startswith("reconciler ")]
    return found + [h["entry"] for h in hook]


def test_the_examples_call_reconciler() -> None:
    commands = reconciler_commands()
    assert any(
        c.startswith("reconciler plan") and "-o reconciler.plan" in c for c in commands
    )
    assert "reconciler apply reconciler.plan" in commands
    assert "reconciler validate" in commands


@pytest.mark.parametrize("command", reconciler_commands())
def test_each_command_parses(command: str, tmp_path: Path) -> None:
    args = shlex.split(command)[1:]
    context = main.make_context("reconciler", list(args), resilient_parsing=False)
    name, sub, rest = main.resolve_command(context, args)
    assert sub is not None, command
    assert isinstance(sub.make_context(name, rest, parent=context), click.Context)
