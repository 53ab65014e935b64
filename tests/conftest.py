"""Shared fixtures: a real sandbox on 127.0.0.1, a copy of the quick start, the CLI runner."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"
ACCOUNT = DEFAULT_ACCOUNT_ID
CANARY_TOKEN = "canary-token-6b1f0c9e-must-never-be-printed"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "sandbox-data", tokens=(DEFAULT_TOKEN, CANARY_TOKEN)) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of examples/quickstart in a temp dir; returns its config path."""
    target = tmp_path / "project"
    shutil.copytree(QUICKSTART, target, ignore=shutil.ignore_patterns(".reconciler", "*.lock"))
    return target / "finetunes.yaml"


@pytest.fixture
def cf_env(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> SandboxServer:
    """The environment a user sets to point reconciler at an API: here, the sandbox."""
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", sandbox.cloudflare_base_url)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return sandbox


@dataclass
class Cli:
    runner: CliRunner

    def __call__(self, *args: str | Path, input: str | None = None) -> Result:
        result = self.runner.invoke(main, [str(a) for a in args], input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert CANARY_TOKEN not in result.output + result.stderr
        return result


@pytest.fixture
def cli() -> Cli:
    return Cli(CliRunner())
