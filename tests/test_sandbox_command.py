"""`reconciler sandbox` as a user runs it: a real process on loopback, stopped by its pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import ACCOUNT, Cli

from reconciler.sandbox import DEFAULT_TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sandbox_command_serves_until_terminated(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "sandbox",
            "--port",
            str(port),
            "--data",
            str(tmp_path / "d"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/client/v4/accounts/{ACCOUNT}/ai/finetunes"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "sandbox did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json() == {"success": True, "errors": [], "messages": [], "result": []}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"export CLOUDFLARE_API_TOKEN={DEFAULT_TOKEN}" in output
    assert f"http://127.0.0.1:{port}/client/v4" in output
    assert (tmp_path / "d" / "sandbox.sqlite3").exists()


def test_sandbox_command_refuses_a_bad_token_and_a_taken_port(cli: Cli, tmp_path: Path) -> None:
    bad = cli("sandbox", "--token", "has space", "--data", tmp_path)
    assert bad.exit_code == 1  # a usage error: 2 means changes or drift
    assert "Invalid value for --token" in bad.stderr
    assert "has space" not in bad.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = cli("sandbox", "--port", str(s.getsockname()[1]), "--data", tmp_path)
        assert taken.exit_code == 1
        assert f"Port {s.getsockname()[1]} is in use by another program" in taken.stderr
        assert "Traceback" not in taken.output
