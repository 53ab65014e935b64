"""`reconciler show`: a saved plan, or one finetune's state and history."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import echo_plan, handle_errors, opened
from reconciler.cli.complete import names
from reconciler.cli.options import config_option, format_option, sandbox_option


@click.command()
@click.argument("target", shell_complete=names(files=True))
@config_option
@format_option
@sandbox_option
@handle_errors
def show(target: str, config_path: Path, fmt: str, sandbox: bool) -> None:
    """Show a saved plan (a PLANFILE from `plan -o`), or one finetune by NAME.

    A plan file is rendered in any --format without calling any API. A NAME shows the
    finetune's recorded and remote state, its event history and a chart of its training loss.
    """
    from reconciler.state import planfile as planfile_mod

    if Path(target).is_file() or "/" in target or target.endswith(".plan"):
        saved = planfile_mod.read_saved_plan(Path(target))
        echo_plan(saved.plan(saved.config_path), fmt)
        return
    from reconciler.project import Project
    from reconciler.render import history
    from reconciler.state import lockfile
    from reconciler.workflow.session import describe

    with opened(Project.at(config_path), sandbox) as s:
        locked, remote, events = describe(s, target)
        versions = lockfile.read_lock(s.project.lockfile).versions.get(target, {})
    click.echo(history.render(target, locked, remote, events, versions), nl=False)
