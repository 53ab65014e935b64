"""What every command shares: error handling, the environment and providers, output."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ConfigError, ReconcilerError

if TYPE_CHECKING:
    from ..model import Desired

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR, EXIT_CHANGES = 1, 2  # and 0: success, no changes


def color_on() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(shown(message), err=True)
    sys.exit(code)


def shown(message: str) -> str:
    """A message as it may be printed: no secret of the environment in it (whatever built
    it), and no control or bidi character from a remote string or a file acting on the
    terminal. Its own line breaks stay."""
    from ..credentials import redact, secret_values
    from ..untrusted import visible

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
            raise  # usage errors: click prints them with the usage line, exit 2
        except KeyboardInterrupt:
            fail("Interrupted. The lockfile records every step that finished.", 130)
        except Exception as exc:  # a bug of ours: say so plainly
            if os.environ.get("RECONCILER_DEBUG"):
                raise
            fail(
                f"Internal error ({type(exc).__name__}): {exc}\n"
                "This is a bug in reconciler; set RECONCILER_DEBUG=1 for a traceback and report it."
            )

    return wrapper  # type: ignore[return-value]


@contextmanager
def session(
    config_path: Path, sandbox: bool
) -> Iterator[tuple[Mapping[str, str], dict[str, Any], Desired]]:
    """The environment, the open providers and the loaded config for one command (against the
    sandbox if asked). The config is parsed here, once; commands pass it on."""
    from ..workflow import open_providers, validate

    if not sandbox:
        env: Mapping[str, str] = dict(os.environ)
        desired = validate(config_path, env)
        with open_providers(config_path, env, None, desired) as providers:
            yield env, providers, desired
        return
    from ..embedded import LABEL, sandbox_env

    where = relative(config_path.parent)
    click.echo(f"Using the local sandbox (state in {where}/.reconciler/sandbox).", err=True)
    with sandbox_env(config_path, os.environ) as env:
        desired = validate(config_path, env)
        with open_providers(config_path, env, LABEL, desired) as providers:
            yield env, providers, desired


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)


def echo_plan(plan: Any, fmt: str) -> None:
    from ..render import render

    color = color_on() and fmt == "text"
    click.echo(render(plan, fmt, color), nl=False, color=color)
