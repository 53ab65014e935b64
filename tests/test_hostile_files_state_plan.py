"""What `plan` says about files (issue 20: L1, L2, L11, L6's catalogue TTL), through the
command line against the sandbox: outputs files apply would write, .env names that collide,
options --refresh-only cannot honour, a TTL that is not one. Each test reproduced its defect
before the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Cli
from hostile_files import ok, set_outputs

from reconciler.sandbox.server import SandboxServer

# L11: plan --refresh-only -o ---------------------------------------------------------------


def test_plan_refresh_only_with_out_is_refused_not_ignored(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plan.out"
    result = cli("plan", "-c", project, "--refresh-only", "-o", out)
    assert result.exit_code == 1
    assert "--refresh-only" in result.stderr and "-o" in result.stderr
    assert not out.exists()


# L1: plan sees outputs that apply would write ----------------------------------------------


def test_plan_reports_a_missing_or_stale_outputs_file_and_detailed_exitcode_says_2(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    assert cli("plan", "-c", versioned, "--detailed-exitcode").exit_code == 0
    worker = versioned.parent / "worker"
    (worker / "loras.json").unlink()
    (worker / "loras.env").write_text("RECONCILER_SUPPORT_BOT_V3=old\n")
    result = cli("plan", "-c", versioned, "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "worker/loras.json (missing)" in result.stderr
    assert "worker/loras.env (stale)" in result.stderr
    as_json = cli("plan", "-c", versioned, "--format", "json", "--detailed-exitcode")
    assert as_json.exit_code == 2
    json.loads(as_json.stdout)  # stdout stays one JSON document
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    assert cli("plan", "-c", versioned, "--detailed-exitcode").exit_code == 0


# L2: .env names that collide ---------------------------------------------------------------


def test_two_finetunes_with_one_env_name_are_refused_naming_both(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    versioned.write_text(versioned.read_text().replace("name: faq-bot-v1", "name: support_bot.v3"))
    result = cli("validate", "-c", versioned)
    assert result.exit_code == 1
    assert "support-bot-v3" in result.stderr and "support_bot.v3" in result.stderr
    assert "RECONCILER_SUPPORT_BOT_V3" in result.stderr


def test_output_env_refuses_two_recorded_names_with_one_env_name(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    versioned.write_text(versioned.read_text().replace("name: faq-bot-v1", "name: support_bot.v3"))
    set_outputs(versioned, "worker/loras.json")
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    result = cli("output", "-c", versioned, "--format", "env")
    assert result.exit_code == 1
    assert "support-bot-v3" in result.stderr and "support_bot.v3" in result.stderr
    assert result.stdout == ""


# L6: RECONCILER_CATALOGUE_TTL ---------------------------------------------------------------


@pytest.mark.parametrize("raw", ["abc", "nan", "-1", "1e400", "\x1b]52;c;aGk=\x07"])
def test_a_catalogue_ttl_that_is_not_one_is_refused_by_name(
    cli: Cli, cf_env: SandboxServer, project: Path, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """As RECONCILER_HTTP_ATTEMPTS and _BACKOFF are: refused by name, not replaced by a day
    (a log line that said so went by on stderr while the command went on), and before the
    catalogue is asked for."""
    monkeypatch.setenv("RECONCILER_CATALOGUE_TTL", raw)
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = cli(*command, "-c", project)
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines()[-1] == (
            "Error: RECONCILER_CATALOGUE_TTL must be a number of seconds >= 0 (unset: a day)"
        )
        assert "\x1b" not in result.output
    assert [p for _, p in cf_env.request_log if p.endswith("/ai/models/search")] == []
    monkeypatch.setenv("RECONCILER_CATALOGUE_TTL", " 0 ")
    ok(cli("plan", "-c", project))


def test_plan_says_before_apply_which_outputs_file_cannot_be_written(
    cli: Cli, cf_env: SandboxServer, versioned: Path, tmp_path: Path
) -> None:
    worker = versioned.parent / "worker"
    worker.mkdir()
    os.mkfifo(worker / "loras.json")
    (worker / "loras.env").symlink_to(tmp_path / "elsewhere.env")
    result = cli("plan", "-c", versioned)
    ok(result)
    assert (
        "Outputs `reconciler apply` would write: worker/loras.json (cannot be written: not a "
        "regular file), worker/loras.env (cannot be written: a symlink, which reconciler does "
        "not write through)."
    ) in result.stderr
