"""Cloudflare's own command, `reconciler public`: its public finetunes, every page.

A provider's commands are click commands in its package (the spec names this module); the
command line adds them to its group, and nothing else imports this module."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.base.errors import PlanError
from reconciler.cli.common import handle_errors, opened
from reconciler.cli.options import config_option, sandbox_option, table_or_json_option
from reconciler.project import Project
from reconciler.providers.cloudflare.env import ACCOUNT_ENV

PROVIDER = "cloudflare"


@click.command()
@config_option
@click.option("--account", help="The account to ask (default: the config's Cloudflare account).")
@click.option(
    "--order-by", help="A column to sort by, as the API takes it (e.g. name, created_at)."
)
@click.option(
    "--page-size",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="How many to fetch per request; every page is read.",
)
@table_or_json_option("A table for people, or JSON.")
@sandbox_option
@handle_errors
def public(
    config_path: Path,
    account: str | None,
    order_by: str | None,
    page_size: int,
    fmt: str,
    sandbox: bool,
) -> None:
    """List the public finetunes Cloudflare offers (any check may use one as its lora)."""
    from reconciler.providers.cloudflare.api import CloudflareProvider
    from reconciler.render import checks as render_checks

    with opened(Project.at(config_path), sandbox) as s:
        env, providers, desired = s.env, s.providers, s.desired
        if account is None:
            accounts = desired.accounts.get(PROVIDER) or ()
            account = accounts[0] if accounts else env.get(ACCOUNT_ENV)
        if not account:
            raise PlanError("no Cloudflare account: pass --account or set CLOUDFLARE_ACCOUNT_ID")
        provider = providers.get(PROVIDER)
        if not isinstance(provider, CloudflareProvider):
            raise PlanError(f"{config_path} uses no Cloudflare finetunes")
        found = provider.list_public(account, order_by, page_size)
    click.echo(render_checks.public(found, fmt), nl=False)


COMMANDS = (public,)
