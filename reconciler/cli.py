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
from .errors import ConfigError, PlanError, ReconcilerError
from .options import (
    config_option,
    detailed_exitcode_option,
    format_option,
    lock_timeout_option,
    parallelism_option,
    prune_option,
    sandbox_option,
    target_option,
)

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
        except click.ClickException:
            raise  # usage errors: click prints them with the usage line, exit 2
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
def session(config_path: Path, sandbox: bool) -> Iterator[tuple[Mapping[str, str], dict[str, Any]]]:
    """The environment and the open providers for one command (against the sandbox if asked)."""
    from .workflow import open_providers

    if not sandbox:
        env: Mapping[str, str] = dict(os.environ)
        with open_providers(config_path, env, None) as providers:
            yield env, providers
        return
    from .embedded import LABEL, sandbox_env

    where = _rel(config_path.parent)
    click.echo(f"Using the local sandbox (state in {where}/.reconciler/sandbox).", err=True)
    with (
        sandbox_env(config_path, os.environ) as env,
        open_providers(config_path, env, LABEL) as providers,
    ):
        yield env, providers


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)


def _echo_plan(plan: Any, fmt: str) -> None:
    from .render import render

    color = _color() and fmt == "text"
    click.echo(render(plan, fmt, color), nl=False, color=color)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v logs what reconciler does (retries included); -vv every HTTP exchange. "
    "Tokens are redacted.",
)
def main(verbose: int) -> None:
    """Declare fine-tuned models in YAML; plan, apply and lock them like infrastructure."""
    from .logs import configure

    configure(verbose, os.environ)


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
@format_option
@target_option
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan, with fingerprints of its inputs, for `reconciler apply PLANFILE`.",
)
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Report only what changed remotely since the lockfile was written (as `drift`).",
)
@prune_option
@handle_errors
def plan(
    config_path: Path,
    detailed_exitcode: bool,
    sandbox: bool,
    fmt: str,
    targets: tuple[str, ...],
    out: Path | None,
    refresh_only: bool,
    prune: bool,
) -> None:
    """Show what apply would do: compare the config, the lockfile and the accounts."""
    if refresh_only:
        _drift(config_path, sandbox, fmt)
        return
    from . import planfile
    from .workflow import make_plan

    with session(config_path, sandbox) as (env, providers):
        planned = make_plan(config_path, env, providers, targets, prune)
    _echo_plan(planned.plan, fmt)
    if planned.plan.blocked:
        sys.exit(EXIT_ERROR)
    if out is not None:
        planfile.save(out, planned.plan, planned.fingerprints, config_path)
        click.echo(
            f"Saved the plan to {out}; apply exactly it with: reconciler apply {out}", err=True
        )
    if detailed_exitcode and planned.plan.has_changes:
        sys.exit(EXIT_CHANGES)


@main.command()
@click.argument("planfile", required=False, type=click.Path(path_type=Path, dir_okay=False))
@config_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@sandbox_option
@parallelism_option
@target_option
@lock_timeout_option
@prune_option
@click.option(
    "--wait",
    is_flag=True,
    help="After the API calls, wait until training finishes, showing each status change; "
    "exit 1 if any training fails.",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(0),
    default=6 * 3600.0,
    show_default=True,
    metavar="SECONDS",
    help="How long --wait waits before giving up (exit 1).",
)
@click.option(
    "--test",
    "run_tests",
    is_flag=True,
    help="After applying (and waiting, with --wait), run the finetunes' checks: as `reconciler "
    "test`; exit 1 if any fails.",
)
@click.pass_context
@handle_errors
def apply(
    ctx: click.Context,
    planfile: Path | None,
    config_path: Path,
    auto_approve: bool,
    sandbox: bool,
    parallelism: int,
    targets: tuple[str, ...],
    lock_timeout: float,
    prune: bool,
    wait: bool,
    wait_timeout: float,
    run_tests: bool,
) -> None:
    """Carry out the plan: create finetunes, upload assets, record them in the lockfile.

    Without PLANFILE it plans first and asks for confirmation on a terminal (without one, it
    refuses unless --auto-approve is given). With PLANFILE (from `plan -o`) it applies exactly
    that plan with no prompt, and refuses if anything the plan was made from has changed.
    """
    from . import planfile as planfile_mod
    from .config import lockfile_path
    from .render import text
    from .runlock import exclusive
    from .workflow import apply as run_apply
    from .workflow import make_plan, use_saved

    saved = None
    if planfile is not None:
        if targets:
            raise PlanError("--target cannot narrow a saved plan: target when making the plan")
        saved = planfile_mod.load(planfile)
        if ctx.get_parameter_source("config_path") is click.core.ParameterSource.DEFAULT:
            config_path = saved.config_path
    color = _color()
    with (
        exclusive(lockfile_path(config_path), lock_timeout),
        session(config_path, sandbox) as (
            env,
            providers,
        ),
    ):
        planned = make_plan(config_path, env, providers, targets, prune)
        if saved is not None and planfile is not None:
            planned = use_saved(planfile, saved, planned)
            click.echo(f"Applying the saved plan {planfile}: {text.summary(planned.plan)}")
        else:
            click.echo(text.render(planned.plan, color=color), nl=False, color=color)
        if planned.plan.blocked:
            sys.exit(EXIT_ERROR)
        if not planned.plan.has_changes:
            click.echo("Nothing to apply.")
            return
        if saved is None and not auto_approve:
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
        if wait:
            _wait(planned, providers, wait_timeout)
        if run_tests:
            _test(planned.desired.finetunes, providers)


def _wait(planned: Any, providers: Any, timeout: float) -> None:
    from . import lockfile, training
    from .providers.cohere import poll_interval

    finished = training.wait(
        planned.plan,
        lockfile.load(planned.lock_path),
        providers,
        on_status=lambda name, status: click.echo(f"  {name}: {status}"),
        interval=poll_interval(),
        timeout=timeout,
    )
    if not finished:
        return
    ready = [f for f in finished if f.ok]
    click.echo(f"Training finished: {len(ready)} ready, {len(finished) - len(ready)} not.")
    for f in finished:
        if not f.ok:
            click.echo(f"  {f.name}: {f.status or 'gone'}", err=True)
    if len(ready) != len(finished):
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


@main.command(name="test")
@config_option
@target_option
@sandbox_option
@handle_errors
def test_(config_path: Path, targets: tuple[str, ...], sandbox: bool) -> None:
    """Run the finetunes' smoke tests (checks:) through Workers AI and print a pass/fail table.

    Each check sends its prompt or messages to the finetune's base model with the finetune as
    the LoRA; exit 1 if any check fails.
    """
    from .workflow import validate

    with session(config_path, sandbox) as (env, providers):
        desired = validate(config_path, env).finetunes
        if targets:
            desired = tuple(
                d for d in desired if d.name in targets or f"{d.provider}.{d.name}" in targets
            )
        _test(desired, providers)


def _test(finetunes: Any, providers: Any) -> None:
    from . import checks
    from .render import checks as render_checks

    declared = [d for d in finetunes if d.checks]
    if not declared:
        click.echo("No checks declared (add checks: to a finetune).")
        return
    found = checks.run(declared, lambda provider: providers[provider].run)
    click.echo(render_checks.results(found), nl=False)
    if not all(r.ok for r in found):
        sys.exit(EXIT_ERROR)


@main.command()
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, or JSON.",
)
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
    from .render import checks as render_checks
    from .workflow import validate

    with session(config_path, sandbox) as (env, providers):
        if account is None:
            accounts = validate(config_path, env).accounts.get("cloudflare") or ()
            account = accounts[0] if accounts else env.get("CLOUDFLARE_ACCOUNT_ID")
        if not account:
            raise PlanError("no Cloudflare account: pass --account or set CLOUDFLARE_ACCOUNT_ID")
        provider = providers.get("cloudflare")
        if provider is None:
            raise PlanError(f"{config_path} uses no Cloudflare finetunes")
        found = provider.list_public(account, order_by, page_size)
    click.echo(render_checks.public(found, fmt), nl=False)


@main.command()
@click.argument("target")
@config_option
@format_option
@sandbox_option
@handle_errors
def show(target: str, config_path: Path, fmt: str, sandbox: bool) -> None:
    """Show a saved plan (a PLANFILE from `plan -o`), or one finetune by NAME.

    A plan file is rendered in any --format without calling any API. A NAME shows the
    finetune's recorded and remote state, its event history and a chart of its training loss.
    """
    from . import planfile as planfile_mod

    # a finetune name has no path separator; a plan file exists, or looks like a path
    if Path(target).is_file() or "/" in target or target.endswith(".plan"):
        saved = planfile_mod.load(Path(target))
        _echo_plan(saved.plan(saved.config_path), fmt)
        return
    from .render import history
    from .workflow import describe

    with session(config_path, sandbox) as (env, providers):
        locked, remote, events = describe(config_path, env, providers, target)
    click.echo(history.render(target, locked, remote, events), nl=False)


@main.command()
@config_option
@sandbox_option
@format_option
@handle_errors
def drift(config_path: Path, sandbox: bool, fmt: str) -> None:
    """Report what changed remotely since the lockfile was written; exit 2 if anything did.

    Finetunes gone from their account, replaced, with changed fields, and unmanaged ones
    present. Local edits to the config are not drift: `plan` shows those.
    """
    _drift(config_path, sandbox, fmt)


def _drift(config_path: Path, sandbox: bool, fmt: str) -> None:
    from .render import drift as render_drift
    from .workflow import detect_drift

    with session(config_path, sandbox) as (env, providers):
        items = detect_drift(config_path, env, providers)
    click.echo(render_drift.render(items, fmt), nl=False)
    if items:
        sys.exit(EXIT_CHANGES)


@main.command(name="import")
@click.argument("name")
@config_option
@click.option(
    "--confirm",
    is_flag=True,
    help="Record the local asset files as verified: you assert they are what was uploaded.",
)
@sandbox_option
@lock_timeout_option
@handle_errors
def import_(
    name: str, config_path: Path, confirm: bool, sandbox: bool, lock_timeout: float
) -> None:
    """Adopt a finetune that already exists in the account into the lockfile.

    The finetune must be declared in the config. Cloudflare cannot tell what was uploaded to
    it, so its assets are recorded from the local files as unverified (plans then warn) until
    you run `reconciler import NAME --confirm`.
    """
    from .config import lockfile_path
    from .runlock import exclusive
    from .workflow import import_finetune

    with (
        exclusive(lockfile_path(config_path), lock_timeout),
        session(config_path, sandbox) as (
            env,
            providers,
        ),
    ):
        entry = import_finetune(config_path, env, providers, name, confirm)
    state = "verified" if confirm else "unverified: confirm with `reconciler import NAME --confirm`"
    click.echo(
        f"Imported {name} (id {entry.id}) into the lockfile; assets {state}.".replace("NAME", name)
    )


@main.command()
@click.argument("name")
@config_option
@lock_timeout_option
@handle_errors
def forget(name: str, config_path: Path, lock_timeout: float) -> None:
    """Stop managing a finetune: drop it from the lockfile. The remote finetune is untouched."""
    from .config import lockfile_path
    from .runlock import exclusive
    from .workflow import forget_finetune

    with exclusive(lockfile_path(config_path), lock_timeout):
        entry, declared = forget_finetune(config_path, dict(os.environ), name)
    click.echo(
        f"Forgot {name} (id {entry.id}); it stays in {entry.provider} account {entry.account}."
    )
    if declared:
        click.echo(
            f"Warning: {config_path} still declares {name}; remove it there too, or the next "
            "plan will find it in the account but not in the lockfile.",
            err=True,
        )


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
@click.option(
    "--clock-speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="How much faster than real time simulated work runs (dataset validation, training).",
)
@click.option(
    "--faults",
    metavar="SPEC|@FILE",
    help="Inject faults, reproducibly under a seed: error statuses, latency, resets, "
    "'commit then drop', the real rate limit. See README (Fault injection).",
)
@handle_errors
def sandbox(
    host: str,
    port: int,
    data_dir: Path,
    tokens: tuple[str, ...],
    clock_speed: float,
    faults: str | None,
) -> None:
    """Run the local emulator of the Cloudflare and Cohere APIs until interrupted."""
    from .sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
    from .sandbox.app import validate_tokens
    from .sandbox.server import serve

    try:
        accepted = validate_tokens(tokens or (DEFAULT_TOKEN,))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--token") from None
    if not tokens:
        click.echo(
            f"Accepting the default sandbox token: export CLOUDFLARE_API_TOKEN={DEFAULT_TOKEN}"
        )
    click.echo(
        f"Any 32-hex account id works, e.g. export CLOUDFLARE_ACCOUNT_ID={DEFAULT_ACCOUNT_ID}"
    )
    spec = None
    if faults:
        from .sandbox.fault_spec import FaultSpec

        try:
            spec = FaultSpec.from_option(faults)
        except (ValueError, OSError) as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    try:
        serve(host, port, data_dir, accepted, clock_speed=clock_speed, faults=spec)
    except OSError as exc:
        raise ReconcilerError(
            f"the sandbox cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port (0 picks a free one)"
        ) from None
