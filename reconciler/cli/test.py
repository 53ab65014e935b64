"""`reconciler test`: the finetunes' smoke tests through the inference API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from reconciler.cli.common import EXIT_ERROR, color_on, handle_errors, opened
from reconciler.cli.options import (
    config_option,
    refresh_catalogue_option,
    sandbox_option,
    target_option,
)


@click.command(name="test")
@config_option
@target_option
@sandbox_option
@refresh_catalogue_option
@handle_errors
def test_(
    config_path: Path, targets: tuple[str, ...], sandbox: bool, refresh_catalogue: bool
) -> None:
    """Run the finetunes' smoke tests (checks:) through Workers AI and print a pass/fail table.

    Each check sends its prompt or messages to the finetune's base model with the finetune as
    the LoRA; exit 1 if any check fails.
    """
    from reconciler.base.untrusted import visible
    from reconciler.project import Project
    from reconciler.state import lockfile
    from reconciler.workflow.session import as_called, base_model_notes

    with opened(Project.at(config_path), sandbox) as s:
        desired = s.desired.finetunes
        if targets:
            desired = tuple(
                d for d in desired if d.name in targets or f"{d.provider}.{d.name}" in targets
            )
        names = tuple(d.name for d in desired if d.checks)
        if names:
            notes = base_model_notes(s, names, refresh_catalogue)
            for note in notes:  # they quote the accounts' model catalogues
                click.echo(f"Warning: {visible(note)}", err=True)
        recorded = lockfile.read_lock(s.project.lockfile)
        run_checks(as_called(desired, recorded), s.providers)


def run_checks(finetunes: Any, providers: Any) -> None:
    from reconciler.apply import checks
    from reconciler.render import checks as render_checks

    declared = [d for d in finetunes if d.checks]
    if not declared:
        click.echo("No checks declared (add checks: to a finetune).")
        return
    found = checks.run(declared, lambda provider: providers[provider].run)
    color = color_on()
    click.echo(render_checks.results(found, color), nl=False, color=color)
    if not all(r.ok for r in found):
        sys.exit(EXIT_ERROR)
