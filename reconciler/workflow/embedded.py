"""--sandbox: run a command against a sandbox started in-process, its state kept beside the config.

The sandbox listens on an ephemeral port on 127.0.0.1 for as long as the command runs; its
data lives in the project's sandbox folder (project.py), so successive commands see the same remote
state. The environment is overlaid so that no real credential is used, or needed.
RECONCILER_SANDBOX_CATALOGUE names a file that extends (or replaces) the sandbox's Workers AI
model catalogue (reconciler/sandbox/catalogue.py documents its format). The sandbox serves the
accounts the config, the environment and the lockfile name (`named_accounts`) besides its
default one: any other answers 403, as the real API answers an account the token cannot use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from reconciler.project import Project

LABEL = "sandbox"
# Simulated work (dataset validation, training) runs this many times faster than real time, so
# that `apply --sandbox --wait` on the Cohere example finishes in seconds.
DEFAULT_CLOCK_SPEED = 600.0
CLOCK_SPEED_VAR = "RECONCILER_SANDBOX_CLOCK_SPEED"


def data_dir(config_path: Path) -> Path:
    return Project.at(config_path.resolve()).sandbox_dir


def clock_speed(env: Mapping[str, str]) -> float:
    """RECONCILER_SANDBOX_CLOCK_SPEED, or DEFAULT_CLOCK_SPEED if it is unset or blank;
    ReconcilerError naming the variable for anything but a speed the sandbox's clock takes."""
    from reconciler.base.errors import ReconcilerError
    from reconciler.sandbox.common.clock import parse_speed

    text = env.get(CLOCK_SPEED_VAR, "")
    if not text.strip():
        return DEFAULT_CLOCK_SPEED
    try:
        return parse_speed(text)
    except ValueError as exc:
        raise ReconcilerError(f"{CLOCK_SPEED_VAR} {exc}") from None


def named_accounts(config_path: Path, env: Mapping[str, str]) -> tuple[str, ...]:
    """The account ids of the sandbox's shape (Cloudflare's 32 lowercase hex) that the
    environment's account variables hold, the config names (read with `env` as the command
    will read it) and the lockfile records (what drift and list read besides the config's).
    No network. A config or lockfile that does not load names none here: the command reads it
    again and says why."""
    from reconciler.base.errors import ReconcilerError
    from reconciler.providers.registry import account_variables, load_config
    from reconciler.sandbox.common.defaults import ACCOUNT_ID_RE
    from reconciler.state.lockfile import read_lock

    named = [env.get(variable, "") for variable in account_variables()]
    try:
        desired = load_config(config_path, env)
    except ReconcilerError:
        pass
    else:
        named.extend(account for ids in desired.accounts.values() for account in ids)
    try:
        recorded = read_lock(Project.at(config_path.resolve()).lockfile)
    except ReconcilerError:
        pass
    else:
        named.extend(f.account for f in recorded.finetunes.values())
    return tuple(a for a in dict.fromkeys(named) if ACCOUNT_ID_RE.fullmatch(a))


@contextmanager
def sandbox_env(config_path: Path, env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    from reconciler.base.errors import ReconcilerError
    from reconciler.providers.registry import specs
    from reconciler.providers.spec import SandboxSite
    from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
    from reconciler.sandbox.cloudflare.catalogue import ENV_VAR, Catalogue, CatalogueError
    from reconciler.sandbox.server import SandboxServer, StateError

    speed = clock_speed(env)
    try:
        catalogue = Catalogue.from_env(env)
    except CatalogueError as exc:
        raise ReconcilerError(f"{ENV_VAR}: {exc}") from None
    sandbox = SandboxServer(data_dir(config_path), clock_speed=speed, catalogue=catalogue)
    try:
        server = sandbox.start()
    except StateError as exc:
        raise ReconcilerError(str(exc)) from None
    try:
        site = SandboxSite(
            url=server.url,
            token=DEFAULT_TOKEN,
            account=DEFAULT_ACCOUNT_ID,
            state_dir=server.data_dir,
        )
        overlay = dict(env)
        for spec in specs():  # each provider points itself at the sandbox, with its token
            overlay.update(spec.sandbox_env(site, env))
        # hf: adapters come from the sandbox's Hub (filled by `sandbox hf-push`), never the
        # real one, and no real HF token is sent to it: the sandbox's own token stands in, so
        # a repo pushed with `--grant reconciler-sandbox-token` reads as the user's own
        overlay["HF_ENDPOINT"] = server.hub_url
        overlay["HF_TOKEN"] = DEFAULT_TOKEN
        # before the command's first request: the config's accounts are served, not others
        server.accounts.add(named_accounts(config_path, overlay))
        yield overlay
    finally:
        server.stop()
