"""`reconciler validate`: check the config and its files, no network."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from reconciler.cli.common import color_on, fail, handle_errors, painted
from reconciler.cli.options import config_option


@click.command()
@config_option
@handle_errors
def validate(config_path: Path) -> None:
    """Check the config and its files without calling any API.

    Reports every problem at once, each with its file, line and column. The account id is the
    environment's, as a token is: when its variable (CLOUDFLARE_ACCOUNT_ID) is unset, the
    config is checked with the sandbox's account id in its place, as --sandbox does, and a
    note says so.
    """
    # config.load is what workflow.validate does, less the stat cache; importing it directly
    # spares validate the plan, apply and lockfile modules (~50 ms of imports)
    from reconciler.config.interpolate import references
    from reconciler.config.loader import load
    from reconciler.providers.registry import account_variables, item_kinds
    from reconciler.sandbox import DEFAULT_ACCOUNT_ID

    env = dict(os.environ)
    unset = [v for v in account_variables() if not env.get(v)]
    for variable in unset:
        env[variable] = DEFAULT_ACCOUNT_ID
    from reconciler.base.errors import ConfigError
    from reconciler.cli.model_notes import model_warnings

    try:
        desired = load(config_path, env, kinds=item_kinds())
    except ConfigError as exc:
        # every problem at once: a model typo is said beside a key typo, not after its fix
        # (after the errors, before their count: the first line stays the first error)
        notes = model_warnings(config_path, item_kinds())
        if not notes:
            raise
        *errors, tally = str(exc).split("\n")
        fail("\n".join([*errors, *notes, tally]), exc.exit_code)
    for note in desired.warnings:
        click.echo(painted(note), err=True, color=color_on(sys.stderr))
    # said only where the config took the account from the variable (it may name one itself)
    named = references(config_path.read_text(encoding="utf-8", errors="replace")) if unset else ()
    for variable in unset:
        if variable in named:
            click.echo(
                f"Note: {variable} is not set, so the account id was taken to be the sandbox's "
                f"({DEFAULT_ACCOUNT_ID}), as --sandbox does; plan and apply against a real "
                f"account need it: export {variable}=<your 32-hex account id>.",
                err=True,
            )
    count = len(desired.finetunes)
    text = f"{config_path} is valid: {count} finetune{'s' if count != 1 else ''}."
    click.echo(click.style(text, fg="green") if color_on() else text, color=color_on())
