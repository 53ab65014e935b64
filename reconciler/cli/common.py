"""What every command shares: error handling, the environment and providers, output."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.base.errors import ConfigError, ReconcilerError
from reconciler.cli.options import NO_COLOR_KEY
from reconciler.project import Project

if TYPE_CHECKING:
    from reconciler.workflow.session import Opened

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR, EXIT_CHANGES = 1, 2  # and 0: success, no changes
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports a process a SIGINT ended


def color_on(stream: Any = None) -> bool:
    """Colour for `stream` (stdout by default): off with --no-color or NO_COLOR (any
    value, https://no-color.org), on with FORCE_COLOR, else on a terminal only."""
    ctx = click.get_current_context(silent=True)
    if (ctx is not None and ctx.find_root().meta.get(NO_COLOR_KEY)) or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM", "") != "dumb"


def fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(painted(shown(message)), err=True, color=color_on(sys.stderr))
    sys.exit(code)


def painted(message: str) -> str:
    """An error message as a terminal shows it: `Error:` in red, a config problem's `error:`
    and `warning:` as compilers colour them. Plain text where colour is off."""
    if not color_on(sys.stderr):
        return message
    marks = {
        ": error: ": click.style("error:", fg="red", bold=True),
        ": warning: ": click.style("warning:", fg="yellow", bold=True),
    }
    lines = []
    for line in message.split("\n"):
        if line.startswith("Error: "):
            line = click.style("Error:", fg="red", bold=True) + line[len("Error:") :]
        for mark, styled in marks.items():
            if mark in line:
                where, rest = line.split(mark, 1)
                line = f"{click.style(where, bold=True)}: {styled} {rest}"
                break
        lines.append(line)
    return "\n".join(lines)


def shown(message: str) -> str:
    """A message as it may be printed: no secret of the environment in it (whatever built
    it), and no control or bidi character from a remote string or a file acting on the
    terminal. Its own line breaks stay."""
    from reconciler.base.credentials import redact, secret_values
    from reconciler.base.untrusted import visible

    return visible(redact(message, secret_values(os.environ)), keep_newlines=True)


def handle_errors(fn: F) -> F:
    """Every failure becomes one clear message and an exit code, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:  # already "file:line:col: error: ..." lines
            fail(str(exc), exc.exit_code)
        except ReconcilerError as exc:
            fail(f"Error: {exc}", exc.exit_code)
        except click.ClickException:
            raise  # usage errors: click prints them with the usage line (cli.py: exit 1)
        except (KeyboardInterrupt, click.Abort):  # Ctrl-C (or Ctrl-D at a prompt)
            fail("Interrupted. The lockfile records every step that finished.", EXIT_INTERRUPTED)
        except Exception as exc:  # a bug of ours: say so plainly
            if os.environ.get("RECONCILER_DEBUG"):
                raise
            fail(
                f"Internal error ({type(exc).__name__}): {exc}\n"
                "This is a bug in reconciler; set RECONCILER_DEBUG=1 for a traceback and report it."
            )

    return wrapper  # type: ignore[return-value]


@contextmanager
def opened(project: Project, sandbox: bool) -> Iterator[Opened]:
    """One command's environment, config (parsed once), stat cache (opened once) and open
    providers, against the sandbox if asked; commands pass what it holds on."""
    from reconciler.workflow import session as workflow

    require_config(project.config)
    if not sandbox:
        with workflow.opened(project, dict(os.environ), None) as s:
            yield s
        return
    from reconciler.workflow.embedded import LABEL, sandbox_env

    where = f"{relative(project.root)}/{project.sandbox_dir.relative_to(project.root)}"
    click.echo(f"Using the local sandbox (state in {where}).", err=True)
    with sandbox_env(project.config, os.environ) as env, workflow.opened(project, env, LABEL) as s:
        yield s


def require_config(config_path: Path) -> None:
    """Refuse a config that is missing or not a file before anything is made beside it (the
    stat cache's or the sandbox's folder): a mistyped -c leaves no state folder behind."""
    if not config_path.is_file():
        from reconciler.providers.registry import load_config

        load_config(config_path, {})  # raises its ConfigError: "file not found (use -c ...)", etc.


def planning(message: str = "Planning: hashing adapter files, reading the accounts...") -> Any:
    """A spinner on stderr while a plan is made, where it takes long enough to notice."""
    from reconciler.cli.progress import hashing_detail, status, terminal

    return status(message, terminal(sys.stderr), detail=hashing_detail())


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)


def echo_plan(plan: Any, fmt: str) -> None:
    from reconciler.render import render

    color = color_on() and fmt == "text"
    click.echo(render(plan, fmt, color), nl=False, color=color)
