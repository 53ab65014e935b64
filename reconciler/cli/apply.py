"""`reconciler apply`: carry a plan out; --wait for training, --test for checks."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.base.errors import PlanError
from reconciler.base.untrusted import visible
from reconciler.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    color_on,
    fail,
    handle_errors,
    opened,
    planning,
    relative,
    require_config,
)
from reconciler.cli.options import (
    config_option,
    lock_timeout_option,
    parallelism_option,
    prune_option,
    refresh_catalogue_option,
    sandbox_option,
    target_option,
)
from reconciler.cli.test import run_checks
from reconciler.project import Project

if TYPE_CHECKING:  # for annotations; the command imports what it runs where it runs it
    from reconciler.apply.runner import Result
    from reconciler.providers.base import Provider
    from reconciler.state.planfile import Saved
    from reconciler.workflow.session import Planned


@click.command()
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
@click.option(
    "--skip-checks",
    is_flag=True,
    help="For emergencies: make new versions current without running their checks (the "
    "promotion gate). The output says the checks were skipped.",
)
@refresh_catalogue_option
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Change nothing remotely: record in the lockfile what the accounts now say (fields "
    "changed remotely; records whose finetune is gone are dropped), after confirmation, so "
    "that drift clears once a remote change is accepted.",
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
    skip_checks: bool,
    refresh_catalogue: bool,
    refresh_only: bool,
) -> None:
    """Carry out the plan: create finetunes, upload assets, record them in the lockfile.

    Without PLANFILE it plans first and asks for confirmation on a terminal (without one, it
    refuses unless --auto-approve is given). With PLANFILE (from `plan -o`) it applies exactly
    that plan with no prompt, and refuses if anything the plan was made from has changed.
    """
    from reconciler.state.runlock import exclusive
    from reconciler.workflow.session import make_plan

    if refresh_only:
        if planfile is not None:
            raise PlanError("--refresh-only takes no PLANFILE: it only reads the accounts")
        _refresh_only(config_path, sandbox, lock_timeout, auto_approve)
        return
    saved = _load_saved(planfile, targets)
    default = ctx.get_parameter_source("config_path") is click.core.ParameterSource.DEFAULT
    if saved is not None and default:
        config_path = saved.config_path
    color = color_on()
    require_config(config_path)  # before the apply lock's file is made beside it
    project = Project.at(config_path)
    with (
        exclusive(project.lockfile, lock_timeout, project.apply_lock),
        opened(project, sandbox) as s,
    ):
        providers = s.providers
        with planning():
            planned = make_plan(
                project,
                s.env,
                providers,
                targets,
                prune,
                s.desired,
                refresh_catalogue,
                cache=s.cache,
            )
        planned = _shown(planned, planfile, saved, prune, color)
        if not _go_ahead(planned, ask=saved is None and not auto_approve):
            return
        result, interrupted = _carry_out(planned, providers, parallelism, skip_checks, color)
        _report(planned, result, skip_checks, color, interrupted)
        if wait:
            _wait(planned, providers, wait_timeout)
        if run_tests:
            _test(planned, providers)


def _load_saved(planfile: Path | None, targets: tuple[str, ...]) -> Saved | None:
    """The plan file given, read and checked as a file (its content is checked against a
    fresh plan once the project is locked)."""
    from reconciler.state import planfile as planfile_mod

    if planfile is None:
        return None
    if targets:
        raise PlanError("--target cannot narrow a saved plan: target when making the plan")
    return planfile_mod.read_saved_plan(planfile)


def _shown(
    planned: Planned, planfile: Path | None, saved: Saved | None, prune: bool, color: bool
) -> Planned:
    """The plan to carry out, shown: a saved plan (reviewed when it was made) is the fresh
    plan narrowed to it, if it equals it, and is shown as its summary; a fresh one in full."""
    from reconciler.render import text
    from reconciler.workflow.session import use_saved

    if saved is not None and planfile is not None:
        planned = use_saved(planfile, saved, planned, prune or planned.desired.prune)
        click.echo(f"Applying the saved plan {planfile}: {text.summary(planned.plan)}")
    else:
        click.echo(text.render(planned.plan, color=color), nl=False, color=color)
    return planned


def _go_ahead(planned: Planned, ask: bool) -> bool:
    """Whether to carry the plan out: not when it is blocked (exit 1) or has nothing to do;
    else once confirmed, when `ask`."""
    if planned.plan.blocked:
        sys.exit(EXIT_ERROR)
    if not planned.plan.has_changes:
        from reconciler.workflow.session import write_outputs

        written = write_outputs(planned)  # a file deleted or never written since is written now
        for path in written:
            click.echo(f"Wrote {relative(path)}.")
        click.echo("Nothing else to apply." if written else "Nothing to apply.")
        return False
    if ask:
        _confirm()
    return True


def _carry_out(
    planned: Planned,
    providers: Mapping[str, Provider],
    parallelism: int,
    skip_checks: bool,
    color: bool,
) -> tuple[Result, bool]:
    """Apply, drawing each step's progress (live on a terminal); and whether Ctrl-C came."""
    from reconciler.workflow.session import apply as run_apply

    click.echo("")
    from reconciler.cli.progress import ApplyView, terminal

    written: list[Path] = []
    with ApplyView(live=terminal(sys.stdout), color=color) as view:
        result = view.run(
            lambda: run_apply(
                planned,
                providers,
                report=view.outcome,
                parallelism=parallelism,
                skip_checks=skip_checks,
                events=view,
                wrote=written.extend,
            )
        )
    if written:  # on stderr, as plan's "Outputs ... would write": stdout stays the steps
        root = planned.project.root
        shown = ", ".join(
            str(p.relative_to(root) if p.is_relative_to(root) else p) for p in written
        )
        click.echo(f"Wrote {visible(shown)} (outputs:).", err=True)
    return result, view.stopping()


def _report(
    planned: Planned, result: Result, skip_checks: bool, color: bool, interrupted: bool = False
) -> None:
    """What the apply did, with the checks the promotion gate ran (or a warning that none did);
    exits 130 if it was interrupted (even where every step under way then finished), 1 if a
    step failed."""
    from reconciler.render import text

    click.echo("")
    if skip_checks and any(s.kind.value == "check" for c in planned.plan.changes for s in c.steps):
        click.echo(
            "Checks were skipped (--skip-checks): new versions became current untested.",
            err=True,
        )
    if result.checks:
        from reconciler.render import checks as render_checks

        click.echo(render_checks.results(result.checks), nl=False)
    click.echo(text.render_result(result, color, interrupted), color=color)
    if result.not_started or interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if result.failed:
        sys.exit(EXIT_ERROR)


def _test(planned: Planned, providers: Mapping[str, Provider]) -> None:
    """--test: the finetunes' checks, as `reconciler test` runs them, against the lock now."""
    from reconciler.state import lockfile
    from reconciler.workflow.session import as_called

    recorded = lockfile.read_lock(planned.lock_path)
    run_checks(as_called(planned.desired.finetunes, recorded), providers)


def _wait(planned: Planned, providers: Mapping[str, Provider], timeout: float) -> None:
    from reconciler.apply import training
    from reconciler.apply.promotion import promote_trained
    from reconciler.apply.training import poll_interval
    from reconciler.state import lockfile

    finished = training.wait(
        planned.plan,
        lockfile.read_lock(planned.lock_path),
        providers,
        on_status=lambda name, status: click.echo(f"  {visible(name)}: {visible(status)}"),
        interval=poll_interval(),
        timeout=timeout,
    )
    if not finished:
        return
    for line in promote_trained(planned.plan, finished, planned.lock_path):
        click.echo(f"  {visible(line)}")
    ready = [f for f in finished if f.ok]
    waiting = [f for f in finished if f.timed_out]
    if waiting:
        click.echo(
            f"Stopped waiting after {timeout:g}s (--wait-timeout): {len(ready)} ready, "
            f"{len(waiting)} still training, {len(finished) - len(ready) - len(waiting)} not."
        )
    else:
        click.echo(f"Training finished: {len(ready)} ready, {len(finished) - len(ready)} not.")
    for f in finished:
        if not f.ok:
            click.echo(f"  {visible(f.name)}: {visible(f.why or f.status or 'gone')}", err=True)
    if len(ready) != len(finished):
        sys.exit(EXIT_ERROR)


def _refresh_only(config_path: Path, sandbox: bool, lock_timeout: float, approve: bool) -> None:
    from reconciler.plan.drift import is_drift
    from reconciler.render import drift as render_drift
    from reconciler.state.runlock import exclusive
    from reconciler.workflow.session import accept_remote

    project = Project.at(config_path)
    with (
        exclusive(project.lockfile, lock_timeout, project.apply_lock),
        opened(project, sandbox) as s,
    ):
        found, record = accept_remote(project, s.env, s.providers, s.desired)
        if not is_drift(found):
            click.echo("No changes: the lockfile matches the accounts.")
            return
        click.echo(render_drift.render(found, "text"), nl=False)
        click.echo(
            "\nApplying with --refresh-only records in the lockfile what the accounts now say "
            "for the finetunes above (gone ones are dropped; unmanaged and replaced ones are "
            "left for `reconciler import` or `ignore:`). Nothing is sent to a provider."
        )
        if not approve:
            _confirm()
        count = record()
    click.echo(f"Refresh complete: {count} record{'s' if count != 1 else ''} updated.")


def _confirm() -> None:
    if not sys.stdin.isatty():
        fail(
            "Error: not applying: confirmation is needed and stdin is not a terminal. "
            "Review the plan above and pass --auto-approve to apply without a prompt."
        )
    click.echo("\nDo you want to perform these actions? Only 'yes' will be accepted to approve.")
    try:
        answer = click.prompt("  Enter a value", default="", show_default=False)
    except click.Abort:  # Ctrl-C or Ctrl-D (end of input) at the prompt: a no
        click.echo("", err=True)  # the terminal did not end the prompt's line
        answer = ""
    if answer.strip() != "yes":
        fail("Apply cancelled; nothing was changed.")
