"""Options shared by several commands, defined once (as pip-tools does)."""

from __future__ import annotations

from pathlib import Path

import click

from .render import FORMATS

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
    ".reconciler/sandbox/ beside the config. No account or credentials needed.",
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
    "(.reconciler/catalogue.json, kept a day) is fresh.",
)
