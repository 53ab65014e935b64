"""Shared fixtures: a real sandbox on 127.0.0.1, a copy of the quick start, the CLI runner."""

from __future__ import annotations

import shutil
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sandbox_clients import client_for

from reconciler.cli.main import main
from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"
ACCOUNT = DEFAULT_ACCOUNT_ID
# A second account the fixtures' sandboxes serve, for tests that show one account's finetunes
# are not another's (any account a sandbox does not serve answers 403, as on the real API).
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
ACCOUNTS = (ACCOUNT, OTHER_ACCOUNT)
CANARY_TOKEN = "canary-token-6b1f0c9e-must-never-be-printed"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(
        tmp_path / "sandbox-data", tokens=(DEFAULT_TOKEN, CANARY_TOKEN), accounts=ACCOUNTS
    ) as server:
        yield server


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox accepting only the default token (the sandbox's own tests), serving ACCOUNTS."""
    with SandboxServer(tmp_path / "data", accounts=ACCOUNTS) as server:
        yield server


@pytest.fixture
def api(sb: SandboxServer) -> Iterator[httpx.Client]:
    """A client of sb's Cloudflare API with the default token."""
    with client_for(sb) as client:
        yield client


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of examples/quickstart in a temp dir; returns its config path."""
    target = tmp_path / "project"
    shutil.copytree(QUICKSTART, target, ignore=shutil.ignore_patterns(".reconciler", "*.lock"))
    return target / "finetunes.yaml"


@pytest.fixture
def versioned(project: Path) -> Path:
    """The quick start with versioning on and an outputs file for the app."""
    text = project.read_text().replace(
        "version: 1\n",
        "version: 1\nsettings:\n  versioning: content\noutputs:\n  - path: worker/loras.json\n"
        "  - path: worker/loras.env\n",
    )
    project.write_text(text)
    return project


@pytest.fixture
def cf_env(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> SandboxServer:
    """The environment a user sets to point reconciler at an API: here, the sandbox."""
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", sandbox.cloudflare_base_url)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return sandbox


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """A bare HTTP server on 127.0.0.1 in a thread, for answers the sandbox never gives
    (HTML, a scripted sequence, a self-signed certificate). Yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


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
