"""`reconciler import` and `reconciler forget`: adopt a remote finetune, or stop managing one."""

from __future__ import annotations

import os
from pathlib import Path

import click

from reconciler.base.untrusted import visible
from reconciler.cli.common import handle_errors, opened, require_config
from reconciler.cli.complete import names
from reconciler.cli.options import (
    config_option,
    lock_timeout_option,
    refresh_catalogue_option,
    sandbox_option,
)


@click.command(name="import")
@click.argument("name", shell_complete=names(lock=False))
@config_option
@click.option(
    "--confirm",
    is_flag=True,
    help="Record the local asset files as verified: you assert they are what was uploaded.",
)
@sandbox_option
@lock_timeout_option
@refresh_catalogue_option
@handle_errors
def import_(
    name: str,
    config_path: Path,
    confirm: bool,
    sandbox: bool,
    lock_timeout: float,
    refresh_catalogue: bool,
) -> None:
    """Adopt a finetune that already exists in the account into the lockfile.

    The finetune must be declared in the config. Cloudflare cannot tell what was uploaded to
    it, so its assets are recorded from the local files as unverified (plans then warn) until
    you run `reconciler import NAME --confirm`.
    """
    from reconciler.project import Project
    from reconciler.state.runlock import exclusive
    from reconciler.workflow.session import base_model_notes, import_finetune

    project = Project.at(config_path)
    require_config(project.config)  # before the apply lock's file is made beside it
    with (
        exclusive(project.lockfile, lock_timeout, project.apply_lock),
        opened(project, sandbox) as s,
    ):
        imported = import_finetune(s, name, confirm)
        for note in base_model_notes(s, (name,), refresh_catalogue):
            click.echo(f"Warning: {visible(note)}", err=True)  # quotes the catalogue
    click.echo(
        f"Imported {name} (id {imported.entry.id}) into the lockfile; "
        f"assets {imported.assets_state}."
    )


@click.command()
@click.argument("name", shell_complete=names(config=False))
@config_option
@lock_timeout_option
@handle_errors
def forget(name: str, config_path: Path, lock_timeout: float) -> None:
    """Stop managing a finetune: drop it from the lockfile. The remote finetune is untouched."""
    from reconciler.project import Project
    from reconciler.state.runlock import exclusive
    from reconciler.workflow.session import forget_finetune

    project = Project.at(config_path)
    with exclusive(project.lockfile, lock_timeout, project.apply_lock):
        entry, declared = forget_finetune(project, dict(os.environ), name)
    click.echo(
        f"Forgot {name} (id {entry.id}); it stays in {entry.provider} account {entry.account}."
    )
    if declared:
        click.echo(
            f"Warning: {config_path} still declares {name}; remove it there too, or the next "
            "plan will find it in the account but not in the lockfile (to manage it again: "
            f"`reconciler import {name}`).",
            err=True,
        )
