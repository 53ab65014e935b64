"""--sandbox: run a command against a sandbox started in-process, its state kept beside the config.

The sandbox listens on an ephemeral port on 127.0.0.1 for as long as the command runs; its
data lives in the project's sandbox folder (project.py), so successive commands see the same remote
state. The environment is overlaid so that no real credential is used, or needed.
RECONCILER_SANDBOX_CATALOGUE names a file that extends (or replaces) the sandbox's Workers AI
model catalogue (reconciler/sandbox/catalogue.py documents its format).
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
        # real one, and no real HF token is sent to it
        overlay["HF_ENDPOINT"] = server.hub_url
        overlay["HF_TOKEN"] = ""
        yield overlay
    finally:
        server.stop()
