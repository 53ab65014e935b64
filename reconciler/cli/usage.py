"""The command group's manners: usage errors exit 1, Terraform spellings get a hint, and -v and
--no-color work after any command.

Exit 2 means "there are changes" (`plan --detailed-exitcode`) and "drift" (`drift`): a CI job
with a mistyped flag must not read that, so a usage error exits 1 like every other error.
Terraform spells its options with one dash (`-auto-approve`); click would read `-out` as `-o ut`
and save the plan to a file named `ut`, so such a word is refused, naming the spelling meant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import click

from reconciler.cli.common import EXIT_ERROR
from reconciler.cli.options import no_color_param, verbose_param

# Terraform's words that reconciler spells differently, beyond `-word` -> `--word`
RESPELLED = {"json": "--format json"}
_SINGLE_DASH_WORD = re.compile(r"-([a-z][a-z0-9]*(?:-[a-z0-9]+)+|[a-z]{2,})(=.*)?")


class Group(click.Group):
    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        # every command takes -v and --no-color after its name too (`reconciler plan -v`),
        # whoever wrote it: they are attached here, once
        present = {opt for p in cmd.params for opt in getattr(p, "opts", ())}
        for make in (verbose_param, no_color_param):
            param = make()
            if not present & set(param.opts):
                cmd.params.append(param)
        super().add_command(cmd, name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            if not extra.get("resilient_parsing"):
                before = []
                for arg in args:
                    if not arg.startswith("-"):
                        break  # the command's name: its own options are checked with it
                    before.append(arg)
                _refuse_terraform_spelling(self, before, None)
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = EXIT_ERROR  # type: ignore[misc]  # a ClassVar in the stubs
            raise

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None and not ctx.resilient_parsing:
            # the command's context, so that the error shows the command's usage line
            _refuse_terraform_spelling(cmd, rest, click.Context(cmd, parent=ctx, info_name=name))
        return name, cmd, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's, or a BadParameter from its body
            exc.exit_code = EXIT_ERROR  # type: ignore[misc]  # a ClassVar in the stubs
            raise


def _refuse_terraform_spelling(
    cmd: click.Command, args: Sequence[str], ctx: click.Context | None
) -> None:
    longs: set[str] = set()
    takes_value: set[str] = set()
    for param in cmd.params:
        if isinstance(param, click.Option):
            longs |= {o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")}
            if not param.is_flag and not param.count:
                takes_value |= set(param.opts)
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--":
            return
        if arg in takes_value:
            skip = True  # its value, whatever it looks like
            continue
        match = _SINGLE_DASH_WORD.fullmatch(arg)
        if match is None:
            continue
        word = match.group(1)
        meant = f"--{word}" if f"--{word}" in longs else None
        if word in RESPELLED and RESPELLED[word].split()[0] in longs:
            meant = RESPELLED[word]
        if meant is not None:
            raise click.UsageError(
                f"{arg} is Terraform's spelling; reconciler's options take two dashes: {meant}",
                ctx,
            )
