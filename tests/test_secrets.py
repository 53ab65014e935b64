"""A canary token must never show: not in output at any verbosity, files, reprs or errors."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from shutil import which

import pytest
from conftest import ACCOUNT, CANARY_TOKEN, Cli, serving

from reconciler.base.errors import AuthError
from reconciler.providers.cloudflare.api import CloudflareProvider, endpoint_from_env
from reconciler.sandbox.server import SandboxServer


def test_canary_absent_everywhere_at_every_verbosity(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "p.plan"
    outputs = [
        cli("-vv", "plan", "-c", project, "-o", plan_file),
        cli("-vv", "apply", plan_file, "-c", project),
        cli("-v", "plan", "-c", project, "--format", "json"),
        cli("plan", "-c", project, "--format", "markdown"),
        cli("-vv", "drift", "-c", project),
    ]
    assert all(r.exit_code == 0 for r in outputs), [r.output for r in outputs]
    assert "http: GET /accounts/" in outputs[0].stderr  # -vv really logs the exchanges
    for result in outputs:  # (the cli fixture also checks every output for the canary)
        assert CANARY_TOKEN not in result.output
    for path in (project.with_suffix(".lock"), plan_file):
        assert CANARY_TOKEN not in path.read_text()
    for path in (
        (project.parent / ".reconciler").rglob("*")
        if (project.parent / ".reconciler").exists()
        else ()
    ):
        if path.is_file():
            assert CANARY_TOKEN.encode() not in path.read_bytes()


def test_canary_absent_from_reprs_and_error_messages(cf_env: SandboxServer) -> None:
    env = {
        "CLOUDFLARE_API_TOKEN": CANARY_TOKEN,
        "CLOUDFLARE_API_BASE_URL": cf_env.cloudflare_base_url,
    }
    endpoint = endpoint_from_env(env)
    provider = CloudflareProvider(endpoint)
    try:
        for thing in (endpoint, provider, provider._api):
            assert CANARY_TOKEN not in repr(thing) + str(thing)
    finally:
        provider.close()
    wrong = CloudflareProvider(
        endpoint_from_env({**env, "CLOUDFLARE_API_TOKEN": CANARY_TOKEN + "x"})
    )
    with pytest.raises(AuthError) as info:
        wrong.list_finetunes(ACCOUNT)
    wrong.close()
    assert CANARY_TOKEN not in str(info.value) + repr(info.value)
    assert "Check CLOUDFLARE_API_TOKEN" in str(info.value)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    if not which("openssl"):
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {"success": True, "errors": [], "messages": [], "result": []}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving(Handler, tls=context) as url:
        yield f"{url}/client/v4"


def test_tls_is_verified_unless_the_endpoint_is_named(
    cli: Cli, project: Path, tls_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", tls_server)
    refused = cli("plan", "-c", project)
    assert refused.exit_code == 1
    assert f"the TLS certificate of {tls_server} could not be verified" in refused.stderr
    monkeypatch.setenv("RECONCILER_INSECURE_TLS", "https://elsewhere.example, " + tls_server)
    allowed = cli("plan", "-c", project)
    assert allowed.exit_code == 0, allowed.output
    assert f"TLS verification is off for {tls_server}" in allowed.stderr
    assert "Plan: 2 to create" in allowed.stdout


def test_logs_redact_every_secret_the_environment_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from reconciler.base import logs

    other = "ghp_" + CANARY_TOKEN[::-1]
    env = {
        "CLOUDFLARE_API_TOKEN": CANARY_TOKEN + "\n",  # as a malformed one would be
        "GITHUB_TOKEN": other,
        "CO_API_URL": "https://user:p4ssw0rd-secret@127.0.0.1/v1?api_key=k3y-secret-value",
        "HOME": "/home/not-a-secret",
    }
    logs.configure(0, env)
    try:
        logging.getLogger("reconciler.test").warning(
            "saw %s, %s, p4ssw0rd-secret, k3y-secret-value in /home/not-a-secret\x1b[2J",
            CANARY_TOKEN,
            other,
        )
    finally:
        logs.configure(0, {})
    err = capsys.readouterr().err
    assert "saw ***, ***, ***, *** in /home/not-a-secret\\x1b[2J" in err
    assert CANARY_TOKEN not in err and other not in err


def test_every_printed_message_is_redacted_and_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.cli.common import shown

    monkeypatch.setenv("CO_API_KEY", CANARY_TOKEN)
    assert shown(f"Internal error (X): {CANARY_TOKEN}\nsecond line\x1b[31m\u202e") == (
        "Internal error (X): ***\nsecond line\\x1b[31m\\u202e"
    )


def test_a_malformed_cohere_key_is_named_not_shown() -> None:
    from reconciler.base.errors import CredentialsError
    from reconciler.providers.cohere.api import endpoint_from_env as cohere_endpoint

    with pytest.raises(CredentialsError) as info:
        cohere_endpoint({"CO_API_KEY": CANARY_TOKEN + "\n"})
    assert str(info.value).startswith("CO_API_KEY ends with a line break")
    assert CANARY_TOKEN not in str(info.value)
    with pytest.raises(CredentialsError) as info:
        cohere_endpoint({"CO_API_KEY": CANARY_TOKEN, "CO_API_URL": "http://127.0.0.1:1/\r\n"})
    assert str(info.value).startswith("CO_API_URL contains a line break")
