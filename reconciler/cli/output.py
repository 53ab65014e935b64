"""`reconciler output`: the name each app should call, from the lockfile alone."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import handle_errors
from reconciler.cli.options import config_option


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("json", "env")),
    default="json",
    show_default=True,
    help='json: {"NAME": {"name": REMOTE_NAME, "id", "provider", "account", "model", '
    '"version"}}; env: RECONCILER_<NAME>=REMOTE_NAME lines.',
)
@handle_errors
def output(names: tuple[str, ...], config_path: Path, fmt: str) -> None:
    """Print each finetune's current version: the name to pass as `lora` to the model.

    Reads the lockfile only: no network, no credentials. A versioned finetune's name is its
    current version's remote name (NAME-<8 hex>); an unversioned one's is its own.
    """
    from reconciler.project import Project
    from reconciler.state import lockfile, outputs

    recorded = lockfile.read_lock(Project.at(config_path).lockfile)
    click.echo(outputs.render(outputs.current(recorded, names), fmt), nl=False)
