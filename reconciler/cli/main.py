"""The command line: parse, call one library function, render, map errors to exit codes.

Each command lives in reconciler/cli/; a provider's own commands live in its package (its
spec names the module); this module is the group that gathers them.
"""

from __future__ import annotations

import importlib
import os

import click

from reconciler import __version__
from reconciler.cli import (
    adopt,
    apply,
    drift,
    listing,
    output,
    plan,
    rebind,
    sandbox,
    show,
    test,
    validate,
)
from reconciler.cli.options import NO_COLOR_HELP, VERBOSE_HELP, no_color_callback
from reconciler.cli.usage import Group
from reconciler.providers.registry import specs


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.option(
    "--no-color", is_flag=True, expose_value=False, callback=no_color_callback, help=NO_COLOR_HELP
)
def main(verbose: int) -> None:
    """Declare fine-tuned models in YAML; plan, apply and lock them like infrastructure."""
    from reconciler.base.logs import configure

    configure(verbose, os.environ)


main.add_command(validate.validate)
main.add_command(plan.plan)
main.add_command(apply.apply)
main.add_command(test.test_)
for _spec in specs():
    if _spec.commands is not None:
        for _command in importlib.import_module(_spec.commands).COMMANDS:
            main.add_command(_command)
main.add_command(show.show)
main.add_command(drift.drift)
main.add_command(listing.list_)
main.add_command(adopt.import_)
main.add_command(adopt.forget)
main.add_command(rebind.rebind)
main.add_command(sandbox.sandbox)
main.add_command(output.output)
