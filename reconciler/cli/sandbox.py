"""`reconciler sandbox`: the local emulator of the APIs (sandbox/mounts.py), in the foreground."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from reconciler.base.errors import ReconcilerError
from reconciler.cli.common import handle_errors
from reconciler.project import Project

# Where `sandbox` keeps its state by default: the sandbox folder of a project whose config is in
# the current folder (.reconciler/sandbox), the folder `--sandbox` uses beside the config.
DEFAULT_DATA = Project.at(Path("finetunes.yaml")).sandbox_dir

Command = Callable[..., Any]
C = TypeVar("C", bound=Command)

# Flags of one emulated API: each reaches its mount as MountContext.options under the
# parameter's name (`--vllm-replicas 3` -> {"vllm_replicas": 3}); a flag left unset (None) is
# left out, so the mount's own default applies. A new one is one line here, e.g.
#   click.option("--vllm-replicas", type=click.IntRange(min=1), help="..."),
MOUNT_OPTIONS: tuple[Callable[[Command], Command], ...] = (
    click.option(
        "--vllm-replicas",
        type=click.IntRange(1, 64),
        help="How many emulated vLLM servers to serve at /vllm/<i> (default 2).",
    ),
    click.option(
        "--vllm-api-key",
        help="The key every emulated vLLM server requires, as vLLM's --api-key (default: none).",
    ),
    click.option(
        "--vllm-model",
        help="The base model the emulated vLLM servers serve "
        "(default meta-llama/Llama-3.1-8B-Instruct).",
    ),
    click.option(
        "--vllm-max-lora-rank",
        type=int,
        help="The emulated servers' --max-lora-rank: a larger rank is refused (default 16).",
    ),
    click.option(
        "--vllm-max-loras",
        type=click.IntRange(min=1),
        help="The emulated servers' --max-loras: adapters held in memory at once (default 1).",
    ),
    click.option(
        "--vllm-max-model-len",
        type=click.IntRange(min=1),
        help="The context length the emulated servers report (default 131072).",
    ),
    click.option(
        "--vllm-load-latency",
        metavar="SECONDS[,SECONDS...]",
        help="Seconds each load_lora_adapter takes, for all servers or one per server.",
    ),
)


class ClockSpeed(click.ParamType[float, Any]):
    """A clock speed, checked by the sandbox's own rule (sandbox/common/clock.py): a
    positive finite number up to its maximum; nan and inf are refused here, not at start."""

    name = "float"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from reconciler.sandbox.common.clock import parse_speed

        if isinstance(value, float):  # the default
            return value
        try:
            return parse_speed(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def mount_options(command: C) -> C:
    """Adds MOUNT_OPTIONS to the command, in the order they are listed."""
    decorated: Command = command
    for option in reversed(MOUNT_OPTIONS):
        decorated = option(decorated)
    return cast(C, decorated)


def data_option(help_text: str) -> Callable[[C], C]:
    """`--data`: the sandbox's state folder, for the server and for hf-push alike."""
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=DEFAULT_DATA,
        show_default=True,
        help=help_text,
    )


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port (0 picks a free one).",
)
@data_option("Where the sandbox keeps its state (SQLite and uploaded assets); survives restarts.")
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help="An API token the sandbox accepts (repeatable). Default: the documented sandbox token.",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="ACCOUNT_ID",
    help="A Cloudflare account id the tokens serve (repeatable); any other gets 403, code "
    "10000. Default: the documented 0123456789abcdef0123456789abcdef.",
)
@click.option(
    "--clock-speed",
    type=ClockSpeed(),
    default=1.0,
    show_default=True,
    help="How much faster than real time simulated work runs (dataset validation, training).",
)
@click.option(
    "--faults",
    metavar="SPEC|@FILE",
    help="Inject faults, reproducibly under a seed: error statuses, latency, resets, "
    "'commit then drop', bandwidth, the real rate limit. See the sandbox docs (Fault injection).",
)
@click.option(
    "--catalogue",
    "catalogue_file",
    metavar="FILE",
    envvar="RECONCILER_SANDBOX_CATALOGUE",
    type=click.Path(path_type=Path, dir_okay=False),
    help='A JSON file of Workers AI model records that extends (or, with "mode": '
    '"replace", replaces) the bundled catalogue served at /ai/models/search. '
    "Env: RECONCILER_SANDBOX_CATALOGUE.",
)
@mount_options
@click.pass_context
@handle_errors
def sandbox(
    ctx: click.Context,
    /,  # with **mount_flags, click's pass_context types only a positional context
    host: str,
    port: int,
    data_dir: Path,
    tokens: tuple[str, ...],
    accounts: tuple[str, ...],
    clock_speed: float,
    faults: str | None,
    catalogue_file: Path | None,
    **mount_flags: Any,
) -> None:
    """Run the local emulator of every API reconciler speaks until interrupted: Cloudflare,
    Cohere, Fireworks, a fleet of vLLM servers, and the Hugging Face Hub at /hf (`sandbox
    hf-push` fills it)."""
    if ctx.invoked_subcommand is not None:
        return
    from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
    from reconciler.sandbox.cloudflare.accounts import checked
    from reconciler.sandbox.cloudflare.catalogue import Catalogue, CatalogueError
    from reconciler.sandbox.common.auth import validate_tokens
    from reconciler.sandbox.server import StateError, exposure_problem, serve

    try:
        accepted = validate_tokens(tokens or (DEFAULT_TOKEN,))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--token") from None
    try:
        served = checked(accounts or (DEFAULT_ACCOUNT_ID,))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--account") from None
    problem = exposure_problem(host, accepted)
    if problem is not None:
        raise ReconcilerError(problem)
    try:
        catalogue = Catalogue.load(catalogue_file)
    except CatalogueError as exc:
        raise click.BadParameter(str(exc), param_hint="--catalogue") from None
    if not tokens:
        click.echo(
            f"Accepting the default sandbox token: export CLOUDFLARE_API_TOKEN={DEFAULT_TOKEN}"
        )
    which = f"account{'s' if len(served) > 1 else ''} {', '.join(served)}"
    click.echo(
        f"Serving Cloudflare {which} (any other gets 403): export CLOUDFLARE_ACCOUNT_ID={served[0]}"
    )
    spec = None
    if faults:
        from reconciler.sandbox.common.fault_spec import FaultSpec

        try:
            spec = FaultSpec.from_option(faults)
        except (ValueError, OSError) as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    try:
        serve(
            host,
            port,
            data_dir,
            accepted,
            clock_speed=clock_speed,
            faults=spec,
            catalogue=catalogue,
            options={name: value for name, value in mount_flags.items() if value is not None},
            accounts=served,
        )
    except StateError as exc:
        raise ReconcilerError(str(exc)) from None
    except ValueError as exc:  # a mount refused its options (it names the option, not a key)
        raise click.UsageError(str(exc).replace("vllm_", "--vllm-", 1).replace("_", "-")) from None
    except OSError as exc:
        raise ReconcilerError(
            f"the sandbox cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port (0 picks a free one)"
        ) from None


@sandbox.command("hf-push")
@click.argument("repo_id")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@data_option(
    f"The sandbox's state folder (the one `--sandbox` uses is {DEFAULT_DATA} beside the config)."
)
@click.option("--tag", help="Point this tag at the new commit (made, or moved from where it was).")
@click.option(
    "--branch",
    default="main",
    show_default=True,
    help="The branch to add the commit to (may hold slashes: release/v3); refs/pr/N adds it to "
    "that open pull request.",
)
@click.option("--pr", is_flag=True, help="Open a new pull request (refs/pr/N) on --branch instead.")
@click.option(
    "--private/--public",
    default=None,
    help="Make the repo private (only --grant tokens see it) or public; default: as it was.",
)
@click.option(
    "--gated/--ungated",
    default=None,
    help="Gate the repo (all see its metadata, only --grant tokens its files) or not.",
)
@click.option(
    "--grant",
    "grants",
    multiple=True,
    metavar="TOKEN",
    help="Give this sandbox token access to the private or gated repo (repeatable).",
)
@handle_errors
def hf_push(
    repo_id: str,
    folder: Path,
    data_dir: Path,
    tag: str | None,
    branch: str,
    pr: bool,
    private: bool | None,
    gated: bool | None,
    grants: tuple[str, ...],
) -> None:
    """Add a commit to a model repo of the sandbox's Hub (HF_ENDPOINT=http://HOST:PORT/hf)
    holding FOLDER's files, as `huggingface_hub.upload_folder` would; print its 40-hex sha last.
    A running sandbox with the same --data serves it at once."""
    from reconciler.sandbox.common.auth import token_id, validate_tokens
    from reconciler.sandbox.hub.store import AccessChange, HubStore

    try:
        granted = tuple(token_id(t) for t in validate_tokens(grants)) if grants else ()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grant") from None
    access = AccessChange(private, gated, granted)
    store = HubStore(data_dir)
    try:
        if pr:
            ref, sha = store.open_pr(repo_id, folder, base=branch, tag=tag, access=access)
        else:
            ref, sha = branch, store.push(repo_id, folder, tag=tag, branch=branch, access=access)
    except ValueError as exc:
        raise ReconcilerError(f"hf-push: {exc}") from None
    except OSError as exc:
        raise ReconcilerError(f"hf-push: {exc.strerror or exc}") from None
    click.echo(f"pushed {folder} to {repo_id} ({ref}{f', tag {tag}' if tag else ''})")
    click.echo(sha)
