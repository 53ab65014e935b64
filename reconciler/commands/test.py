"""`reconciler test`: the finetunes' smoke tests through the inference API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..options import config_option, sandbox_option, target_option
from .common import EXIT_ERROR, handle_errors, session


@click.command(name="test")
@config_option
@target_option
@sandbox_option
@handle_errors
def test_(config_path: Path, targets: tuple[str, ...], sandbox: bool) -> None:
    """Run the finetunes' smoke tests (checks:) through Workers AI and print a pass/fail table.

    Each check sends its prompt or messages to the finetune's base model with the finetune as
    the LoRA; exit 1 if any check fails.
    """
    with session(config_path, sandbox) as (_env, providers, loaded):
        desired = loaded.finetunes
        if targets:
            desired = tuple(
                d for d in desired if d.name in targets or f"{d.provider}.{d.name}" in targets
            )
        run_checks(desired, providers)


def run_checks(finetunes: Any, providers: Any) -> None:
    from .. import checks
    from ..render import checks as render_checks

    declared = [d for d in finetunes if d.checks]
    if not declared:
        click.echo("No checks declared (add checks: to a finetune).")
        return
    found = checks.run(declared, lambda provider: providers[provider].run)
    click.echo(render_checks.results(found), nl=False)
    if not all(r.ok for r in found):
        sys.exit(EXIT_ERROR)
