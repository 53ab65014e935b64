"""`reconciler plan`: what apply would do; saved plans and formats."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    echo_plan,
    handle_errors,
    opened,
    planning,
)
from reconciler.cli.drift import report_drift
from reconciler.cli.options import (
    config_option,
    detailed_exitcode_option,
    format_option,
    prune_option,
    refresh_catalogue_option,
    sandbox_option,
    target_option,
)


@click.command()
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
@refresh_catalogue_option
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
    refresh_catalogue: bool,
) -> None:
    """Show what apply would do: compare the config, the lockfile and the accounts."""
    if refresh_only:
        _refresh_only_alone(out, targets, prune, refresh_catalogue)
        report_drift(config_path, sandbox, fmt)
        return
    from reconciler.base.errors import PlanFileError
    from reconciler.project import Project
    from reconciler.state import planfile
    from reconciler.workflow.session import make_plan

    project = Project.at(config_path)
    if out is not None and project.owned(out):
        raise PlanFileError(
            f"{out}: is {project.owned(out)}; a plan is saved to a file of its own "
            "(e.g. -o plan.out), never over the project's files"
        )
    with opened(project, sandbox) as s, planning():
        planned = make_plan(
            project, s.env, s.providers, targets, prune, s.desired, refresh_catalogue, cache=s.cache
        )
    echo_plan(planned.plan, fmt)
    if planned.plan.blocked:
        sys.exit(EXIT_ERROR)
    if out is not None:
        planfile.save(out, planned.plan, planned.fingerprints, config_path)
        # the endpoint is part of what was planned: the hint names it, so a copied command works
        flag = "--sandbox " if sandbox else ""
        click.echo(
            f"Saved the plan to {out}; apply exactly it with: reconciler apply {flag}{out}",
            err=True,
        )
    if planned.outputs_due:
        # on stderr, so that stdout stays the plan alone (one JSON document with --format json)
        files = ", ".join(f"{path} ({why})" for path, why in planned.outputs_due)
        click.echo(f"Outputs `reconciler apply` would write: {files}.", err=True)
    if detailed_exitcode and (planned.plan.has_changes or planned.outputs_due):
        sys.exit(EXIT_CHANGES)


def _refresh_only_alone(
    out: Path | None, targets: tuple[str, ...], prune: bool, refresh_catalogue: bool
) -> None:
    """--refresh-only reports drift, which is no plan: an option that would shape or save a
    plan is refused rather than ignored."""
    given = [
        name
        for name, on in (
            ("-o/--out", out is not None),
            ("--target", bool(targets)),
            ("--prune", prune),
            ("--refresh-catalogue", refresh_catalogue),
        )
        if on
    ]
    if given:
        raise click.UsageError(
            f"--refresh-only reports what changed remotely and makes no plan, so "
            f"{', '.join(given)} cannot go with it; run `reconciler plan` without --refresh-only"
        )
