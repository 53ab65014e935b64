"""Every command has help text and is documented in the README (as sqlite-utils checks)."""

from __future__ import annotations

import click
import pytest
from conftest import ROOT, Cli

from reconciler.cli.main import main

COMMANDS = sorted(main.commands)


def test_there_are_commands() -> None:
    assert {"validate", "plan", "apply", "sandbox"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_and_is_in_readme(cli: Cli, name: str) -> None:
    command = main.commands[name]
    assert command.help and len(command.help.strip()) > 20
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{name} {param.opts} has no help text"
    result = cli(name, "--help")
    assert result.exit_code == 0
    assert f"Usage: main {name}" in result.stdout or f"Usage: reconciler {name}" in result.stdout
    readme = (ROOT / "README.md").read_text()
    assert f"reconciler {name}" in readme
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[-1] in readme, f"{name} {param.opts[-1]} is not in the README"
