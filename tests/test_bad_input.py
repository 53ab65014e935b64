"""Bad input: one clear message, exit code 1, no API call, and an untouched lockfile."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import CANARY_TOKEN, Cli, serving

from reconciler.sandbox.server import SandboxServer

LOCK = '{"format_version": 1, "endpoints": {}, "finetunes": {}}\n'


@pytest.fixture
def locked_project(project: Path) -> Path:
    project.with_suffix(".lock").write_text(LOCK)
    return project


def api_calls(sandbox: SandboxServer) -> list[tuple[str, str]]:
    return [c for c in sandbox.request_log if "/accounts/" in c[1]]


def check_refused(cli: Cli, sandbox: SandboxServer, config: Path, *expected: str) -> str:
    before = config.with_suffix(".lock").read_bytes()
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = cli(*command, "-c", config)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        for text in expected:
            assert text in result.stderr
        assert config.with_suffix(".lock").read_bytes() == before
        assert api_calls(sandbox) == []
    return result.stderr


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("finetunes:", "finetunes: [", 1), "error: invalid YAML"),
        (
            lambda t: t.replace("public: false", "public: nope"),
            "finetunes[0].public: expected a boolean",
        ),
        (
            lambda t: t.replace("name: faq-bot-v1", "name: support-bot-v3"),
            "duplicate finetune name 'support-bot-v3'",
        ),
        (
            lambda t: t.replace("adapters/faq-v1/", "adapters/nowhere/"),
            "adapter folder adapters/nowhere/ does not exist",
        ),
    ],
    ids=["malformed-yaml", "schema", "duplicate-name", "missing-folder"],
)
def test_config_errors(
    cli: Cli, cf_env: SandboxServer, locked_project: Path, edit, expected: str
) -> None:
    locked_project.write_text(edit(locked_project.read_text()))
    err = check_refused(cli, cf_env, locked_project, expected)
    assert err.startswith(f"{locked_project}:")


def test_missing_adapter_file(cli: Cli, cf_env: SandboxServer, locked_project: Path) -> None:
    (locked_project.parent / "adapters" / "faq-v1" / "adapter_model.safetensors").unlink()
    check_refused(
        cli,
        cf_env,
        locked_project,
        "adapters/faq-v1/adapter_model.safetensors: not found in the adapter folder",
    )


def test_token_missing(
    cli: Cli, cf_env: SandboxServer, locked_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    check_refused(
        cli, cf_env, locked_project, "Error: CLOUDFLARE_API_TOKEN is not set", "--sandbox"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{ corrupt", "not valid JSON"),
        ('{"format_version": 9, "finetunes": {}}', "newer reconciler"),
    ],
)
def test_bad_lockfile(
    cli: Cli, cf_env: SandboxServer, project: Path, content: str, expected: str
) -> None:
    project.with_suffix(".lock").write_text(content)
    check_refused(cli, cf_env, project, expected)


def test_token_rejected_names_the_variable(
    cli: Cli, cf_env: SandboxServer, locked_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "wrong-token")
    result = cli("plan", "-c", locked_project)
    assert result.exit_code == 1
    assert "the API rejected the token" in result.stderr
    assert "Check CLOUDFLARE_API_TOKEN" in result.stderr
    assert "wrong-token" not in result.output
    assert locked_project.with_suffix(".lock").read_text() == LOCK


def test_unreachable_endpoint(
    cli: Cli, locked_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "0" * 32)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", f"http://127.0.0.1:{port}/client/v4")
    result = cli("plan", "-c", locked_project)
    assert result.exit_code == 1
    assert f"cannot reach http://127.0.0.1:{port}/client/v4" in result.stderr
    assert "check CLOUDFLARE_API_BASE_URL" in result.stderr
    assert locked_project.with_suffix(".lock").read_text() == LOCK


@pytest.fixture
def html_server() -> Iterator[str]:
    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Html) as url:
        yield url


def test_endpoint_answering_html(
    cli: Cli, locked_project: Path, html_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "0" * 32)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", html_server)
    result = cli("plan", "-c", locked_project)
    assert result.exit_code == 1
    assert "answered HTTP 200 with text/html, not the API's JSON" in result.stderr
    assert "is CLOUDFLARE_API_BASE_URL right?" in result.stderr


def test_apply_without_tty_refuses_without_auto_approve(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    result = cli("apply", "-c", project)
    assert result.exit_code == 1
    assert "pass --auto-approve" in result.stderr
    assert not project.with_suffix(".lock").exists()
    assert [c for c in api_calls(cf_env) if c[0] == "POST"] == []


def test_lock_json_is_never_touched_by_plan(
    cli: Cli, cf_env: SandboxServer, locked_project: Path
) -> None:
    assert cli("plan", "-c", locked_project).exit_code == 0
    assert json.loads(locked_project.with_suffix(".lock").read_text())["finetunes"] == {}
    assert locked_project.with_suffix(".lock").read_text() == LOCK
