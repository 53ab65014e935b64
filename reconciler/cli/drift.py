"""`reconciler drift`: what changed remotely since the lockfile was written."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.common import EXIT_CHANGES, color_on, handle_errors, opened
from reconciler.cli.options import config_option, format_option, sandbox_option


@click.command()
@config_option
@sandbox_option
@format_option
@handle_errors
def drift(config_path: Path, sandbox: bool, fmt: str) -> None:
    """Report what changed remotely since the lockfile was written; exit 2 if anything did.

    Finetunes gone from their account, replaced, with changed fields, and unmanaged ones
    present. Local edits to the config are not drift: `plan` shows those.
    """
    report_drift(config_path, sandbox, fmt)


def report_drift(config_path: Path, sandbox: bool, fmt: str) -> None:
    from reconciler.plan.drift import is_drift
    from reconciler.project import Project
    from reconciler.render import drift as render_drift
    from reconciler.workflow.session import detect_drift

    with opened(Project.at(config_path), sandbox) as s:
        items = detect_drift(s.project, s.env, s.providers, s.desired)
    color = color_on() and fmt == "text"
    click.echo(render_drift.render(items, fmt, color), nl=False, color=color)
    if is_drift(items):
        sys.exit(EXIT_CHANGES)
