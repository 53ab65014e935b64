"""`reconciler rebind PROVIDER`: the same API at another address, recorded in the lockfile."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import handle_errors, opened, require_config
from reconciler.cli.options import config_option, lock_timeout_option, sandbox_option


@click.command()
@click.argument("provider")
@config_option
@sandbox_option
@lock_timeout_option
@handle_errors
def rebind(provider: str, config_path: Path, sandbox: bool, lock_timeout: float) -> None:
    """Record this run's endpoint for PROVIDER in the lockfile.

    For the same API at another address: a proxy in front of it, a new
    CLOUDFLARE_API_BASE_URL. Every finetune the lockfile records for PROVIDER must be found
    at the new endpoint first; otherwise nothing is changed.
    """
    from reconciler.project import Project
    from reconciler.state.runlock import exclusive
    from reconciler.workflow.session import rebind_endpoint

    project = Project.at(config_path)
    require_config(project.config)  # before the apply lock's file is made beside it
    with (
        exclusive(project.lockfile, lock_timeout, project.apply_lock),
        opened(project, sandbox) as s,
    ):
        was, now, count = rebind_endpoint(s, provider)
    click.echo(
        f"Rebound {provider} from {was or '(none)'} to {now}: the lockfile's {count} "
        f"finetune{'s' if count != 1 else ''} {'were' if count != 1 else 'was'} found there."
    )
