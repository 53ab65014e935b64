"""The command line: parse, call one library function, render, map errors to exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import ConfigError, ReconcilerError
from .options import config_option, detailed_exitcode_option, parallelism_option, sandbox_option

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Every failure becomes one clear message and an exit code, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:  # already "file:line:col: error: ..." lines
            _fail(str(exc), exc.exit_code)
        except ReconcilerError as exc:
            _fail(f"Error: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            _fail("Interrupted. The lockfile records every step that finished.", 130)
        except Exception as exc:  # a bug of ours: say so plainly
            if os.environ.get("RECONCILER_DEBUG"):
                raise
            _fail(
                f"Internal error ({type(exc).__name__}): {exc}\n"
                "This is a bug in reconciler; set RECONCILER_DEBUG=1 for a traceback and report it."
            )

    return wrapper  # type: ignore[return-value]


@contextmanager
def environment(config_path: Path, sandbox: bool) -> Iterator[Mapping[str, str]]:
    if not sandbox:
        yield dict(os.environ)
        return
    from .embedded import sandbox_env

    click.echo(
        f"Using the local sandbox (state in {_rel(config_path.parent)}/.reconciler/sandbox).",
        err=True,
    )
    with sandbox_env(config_path, os.environ) as env:
        yield env


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def main() -> None:
    """Declare fine-tuned models in YAML; plan, apply and lock them like infrastructure."""


@main.command()
@config_option
@handle_errors
def validate(config_path: Path) -> None:
    """Check the config and its files without calling any API.

    Reports every problem at once, each with its file, line and column.
    """
    from .workflow import validate as run_validate

    desired = run_validate(config_path, dict(os.environ))
    count = len(desired.finetunes)
    click.echo(f"{config_path} is valid: {count} finetune{'s' if count != 1 else ''}.")


@main.command()
@config_option
@detailed_exitcode_option
@sandbox_option
@handle_errors
def plan(config_path: Path, detailed_exitcode: bool, sandbox: bool) -> None:
    """Show what apply would do: compare the config, the lockfile and the accounts."""
    from .render import text
    from .workflow import make_plan, open_providers, providers_for

    with (
        environment(config_path, sandbox) as env,
        open_providers(
            providers_for(config_path, env), env, "sandbox" if sandbox else None
        ) as providers,
    ):
        planned = make_plan(config_path, env, providers)
    color = _color()
    click.echo(text.render(planned.plan, color=color), nl=False, color=color)
    if planned.plan.blocked:
        sys.exit(EXIT_ERROR)
    if detailed_exitcode and planned.plan.has_changes:
        sys.exit(EXIT_CHANGES)


@main.command()
@config_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@sandbox_option
@parallelism_option
@handle_errors
def apply(config_path: Path, auto_approve: bool, sandbox: bool, parallelism: int) -> None:
    """Carry out the plan: create finetunes, upload assets, record them in the lockfile.

    Asks for confirmation on a terminal; without one, refuses unless --auto-approve is given.
    """
    from .render import text
    from .workflow import apply as run_apply
    from .workflow import make_plan, open_providers, providers_for

    color = _color()
    with (
        environment(config_path, sandbox) as env,
        open_providers(
            providers_for(config_path, env), env, "sandbox" if sandbox else None
        ) as providers,
    ):
        planned = make_plan(config_path, env, providers)
        click.echo(text.render(planned.plan, color=color), nl=False, color=color)
        if planned.plan.blocked:
            sys.exit(EXIT_ERROR)
        if not planned.plan.has_changes:
            click.echo("Nothing to apply.")
            return
        if not auto_approve:
            _confirm()
        click.echo("")
        result = run_apply(
            planned,
            providers,
            report=lambda o: click.echo(text.render_outcome(o, color), color=color),
            parallelism=parallelism,
        )
    click.echo("")
    click.echo(text.render_result(result, color), color=color)
    if result.failed:
        sys.exit(EXIT_ERROR)


def _confirm() -> None:
    if not sys.stdin.isatty():
        _fail(
            "Error: not applying: confirmation is needed and stdin is not a terminal. "
            "Review the plan above and pass --auto-approve to apply without a prompt."
        )
    click.echo("\nDo you want to perform these actions? Only 'yes' will be accepted to approve.")
    answer = click.prompt("  Enter a value", default="", show_default=False)
    if answer.strip() != "yes":
        _fail("Apply cancelled; nothing was changed.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port (0 picks a free one).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".reconciler/sandbox"),
    show_default=True,
    help="Where the sandbox keeps its state (SQLite and uploaded assets); survives restarts.",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help="An API token the sandbox accepts (repeatable). Default: the documented sandbox token.",
)
@handle_errors
def sandbox(host: str, port: int, data_dir: Path, tokens: tuple[str, ...]) -> None:
    """Run the local emulator of the Cloudflare finetune API until interrupted."""
    from .sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
    from .sandbox.server import serve

    accepted = tokens or (DEFAULT_TOKEN,)
    if not tokens:
        click.echo(
            f"Accepting the default sandbox token: export CLOUDFLARE_API_TOKEN={DEFAULT_TOKEN}"
        )
    click.echo(
        f"Any 32-hex account id works, e.g. export CLOUDFLARE_ACCOUNT_ID={DEFAULT_ACCOUNT_ID}"
    )
    serve(host, port, data_dir, accepted)
