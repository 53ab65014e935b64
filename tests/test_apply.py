"""apply: failures part-way leave a lockfile from which the next plan shows exactly the rest."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ACCOUNT, CANARY_TOKEN, Cli

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.cloudflare.store import SandboxLimits
from reconciler.sandbox.server import SandboxServer


def point_at(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", server.cloudflare_base_url)


def test_failure_part_way_is_recorded_and_resumed(
    cli: Cli, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "remote"
    # the sandbox refuses anything over 1000 bytes: the .safetensors uploads (2.5 KiB) fail
    with SandboxServer(data, limits=SandboxLimits(max_asset_bytes=1000)) as small:
        point_at(monkeypatch, small)
        result = cli("apply", "-c", project, "--auto-approve")
        port = small.port
    assert result.exit_code == 1
    assert result.stdout.count("ERR ") == 2
    assert "upload adapter_model.safetensors" in result.stdout
    assert (
        "Apply failed: 2 step(s) failed (2 created, 2 uploaded, 0 forgotten before that)"
        in result.stdout
    )

    lock = json.loads(project.with_suffix(".lock").read_text())
    for entry in lock["finetunes"].values():
        assert list(entry["assets"]) == ["adapter_config.json"]

    # the same remote (state and address), now with the published limits
    with SandboxServer(data, port=port) as full:
        point_at(monkeypatch, full)
        plan = cli("plan", "-c", project, "--detailed-exitcode")
        assert plan.exit_code == 2
        assert "Plan: 0 to create, 2 to upload, 0 to forget, 0 unchanged." in plan.stdout
        assert plan.stdout.count('+ asset "adapter_model.safetensors"') == 2
        assert 'asset "adapter_config.json"' not in plan.stdout

        finish = cli("apply", "-c", project, "--auto-approve")
        assert finish.exit_code == 0, finish.output
        assert "Apply complete: 0 created, 2 uploaded, 0 forgotten." in finish.stdout
        assert cli("plan", "-c", project, "--detailed-exitcode").exit_code == 0
        creates = [c for c in full.request_log if c[0] == "POST" and c[1].endswith("/finetunes")]
        assert creates == []


def test_blocked_change_applies_nothing(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    project.write_text(
        project.read_text().replace("Answers from the product FAQ", "Answers, better")
    )
    lock_before = project.with_suffix(".lock").read_bytes()
    posts_before = len([c for c in cf_env.request_log if c[0] == "POST"])

    result = cli("apply", "-c", project, "--auto-approve")
    assert result.exit_code == 1
    assert '~ description = "Answers from the product FAQ" -> "Answers, better"' in result.stdout
    assert "set `versioning: content` on it" in result.stdout
    assert project.with_suffix(".lock").read_bytes() == lock_before
    assert len([c for c in cf_env.request_log if c[0] == "POST"]) == posts_before


def test_removed_finetune_is_forgotten_not_deleted(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    text = project.read_text()
    project.write_text(text[: text.index("  - name: faq-bot-v1")])
    plan = cli("plan", "-c", project, "--detailed-exitcode")
    assert plan.exit_code == 2
    assert "Plan: 0 to create, 0 to upload, 1 to forget, 1 unchanged." in plan.stdout
    assert "cloudflare keeps finetune faq-bot-v1" in plan.stdout

    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    assert list(json.loads(project.with_suffix(".lock").read_text())["finetunes"]) == [
        "support-bot-v3"
    ]
    after = cli("plan", "-c", project, "--detailed-exitcode")
    assert after.exit_code == 0  # still in the account: a leftover of ours, not unmanaged
    assert '? finetune "faq-bot-v1"' not in after.stdout
    assert "1 leftover finetune kept in the accounts" in after.stdout
    as_json = json.loads(cli("plan", "-c", project, "--format", "json").stdout)
    assert as_json["leftovers"] == 1 and as_json["summary"]["unmanaged"] == 0


def _run_in_terminal(args: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run the real console script on a pseudo-terminal and answer its prompt."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        args, stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True
    )
    os.close(terminal)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:
                    break  # the terminal closed: the process has exited
                if not chunk:
                    break
                output += chunk
                if not answered and b"Enter a value" in output:
                    os.write(controller, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), output.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)


@pytest.mark.parametrize(("answer", "code", "applied"), [("yes", 0, True), ("no", 1, False)])
def test_confirmation_prompt_on_a_terminal(
    cf_env: SandboxServer, project: Path, answer: str, code: int, applied: bool
) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    args = [sys.executable, "-m", "reconciler", "apply", "-c", str(project)]
    exit_code, output = _run_in_terminal(args, env, answer)
    assert "Only 'yes' will be accepted" in output
    assert exit_code == code, output
    assert project.with_suffix(".lock").exists() is applied
    assert CANARY_TOKEN not in output
    assert "\x1b[3" not in output  # NO_COLOR is honoured on a terminal
