"""`reconciler list`: what the accounts hold, each finetune managed, unmanaged or leftover."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import color_on, handle_errors, opened
from reconciler.cli.options import config_option, sandbox_option, table_or_json_option


@click.command(name="list")
@config_option
@table_or_json_option("A table for people, or JSON (format_version 1) for machines.")
@sandbox_option
@handle_errors
def list_(config_path: Path, fmt: str, sandbox: bool) -> None:
    """List every finetune in the accounts the config and the lockfile name (one list request
    per account), each marked managed (the lockfile's record of a finetune the config
    declares), leftover (recorded, but gone from the config, or an earlier version) or
    unmanaged (in no record: `reconciler import NAME` adopts one the config declares).
    """
    from reconciler.project import Project
    from reconciler.render import inventory
    from reconciler.workflow.inventory import read

    with opened(Project.at(config_path), sandbox) as s:
        found = read(s)
    color = color_on() and fmt == "table"
    click.echo(inventory.render(found, fmt, color), nl=False, color=color)
