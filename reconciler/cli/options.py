"""Options shared by several commands, defined once (as pip-tools does)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.cli.complete import names
from reconciler.project import STATE_DIR
from reconciler.render import FORMATS

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("finetunes.yaml"),
    show_default=True,
    envvar="RECONCILER_CONFIG",
    help="The config file. Its lockfile sits beside it (finetunes.yaml -> finetunes.lock).",
)

sandbox_option = click.option(
    "--sandbox",
    is_flag=True,
    help="Run against a local sandbox started for this command, its state kept in "
    f"{STATE_DIR}/sandbox/ beside the config. No account or credentials needed.",
)

detailed_exitcode_option = click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes, 1 on error, 2 when there are changes.",
)

parallelism_option = click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="How many finetunes to apply at once; one finetune's steps always run in order.",
)

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for machines (schemas/plan.schema.json), markdown for a "
    "pull-request comment.",
)

target_option = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME",
    help="Only this finetune (repeatable); NAME or provider.NAME.",
    shell_complete=names(),
)

lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another apply to release the lockfile before giving up.",
)

prune_option = click.option(
    "--prune",
    is_flag=True,
    help="Delete finetunes removed from the config, where the provider can (Cohere); never "
    "those with prevent_destroy. Without it they are only forgotten.",
)

refresh_catalogue_option = click.option(
    "--refresh-catalogue",
    is_flag=True,
    help="Read each account's model catalogue from the provider even if the cached copy "
    f"({STATE_DIR}/catalogue.json, kept a day) is fresh.",
)


def _more_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    """-v after the command: added to any given before it (`reconciler -v plan -v` is -vv)."""
    if value and not ctx.resilient_parsing:
        import os

        from reconciler.base.logs import configure

        configure(int(ctx.find_root().params.get("verbose") or 0) + value, os.environ)


NO_COLOR_KEY = "reconciler.no_color"  # in the root context's meta: --no-color was given


def no_color_callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta[NO_COLOR_KEY] = True


VERBOSE_HELP = (
    "-v: one line per apply step and per HTTP request (method, path, status, time); -vv: more "
    "detail. Before or after the command. Tokens are redacted."
)
NO_COLOR_HELP = "No colour in the output (as NO_COLOR=1 does). Before or after the command."


def verbose_param() -> click.Option:
    """-v/--verbose for a command; the group takes it too (cli.py)."""
    return click.Option(
        ["-v", "--verbose"],
        count=True,
        expose_value=False,
        callback=_more_verbose,
        help=VERBOSE_HELP,
    )


def no_color_param() -> click.Option:
    return click.Option(
        ["--no-color"],
        is_flag=True,
        expose_value=False,
        callback=no_color_callback,
        help=NO_COLOR_HELP,
    )


def table_or_json_option(help: str) -> Callable[[F], F]:
    """--format table|json, for the commands that list things (list, public)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help=help,
    )
