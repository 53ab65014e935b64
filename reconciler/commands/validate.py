"""`reconciler validate`: check the config and its files, no network."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..options import config_option
from .common import handle_errors


@click.command()
@config_option
@handle_errors
def validate(config_path: Path) -> None:
    """Check the config and its files without calling any API.

    Reports every problem at once, each with its file, line and column.
    """
    # config.load is what workflow.validate does, less the stat cache; importing it directly
    # spares validate the plan, apply and lockfile modules (~50 ms of imports)
    from ..config import load

    desired = load(config_path, dict(os.environ))
    for note in desired.warnings:
        click.echo(note, err=True)
    count = len(desired.finetunes)
    click.echo(f"{config_path} is valid: {count} finetune{'s' if count != 1 else ''}.")
