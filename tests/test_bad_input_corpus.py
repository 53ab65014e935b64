"""Every case of the corpus: its exact message, exit 1, no API call, the lockfile untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_input_cases import CASES, Break, Setup
from conftest import CANARY_TOKEN, Cli

from reconciler.sandbox.server import SandboxServer

EMPTY_LOCK = '{"format_version": 1, "finetunes": {}}\n'


def snapshot(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 40
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)
    assert all(expected for _, _, expected in CASES)


@pytest.mark.parametrize(("case_id", "breaks", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    cli: Cli,
    cf_env: SandboxServer,
    project: Path,
    case_id: str,
    breaks: Break,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = project.with_suffix(".lock")
    lock.write_text(EMPTY_LOCK)
    setup = breaks(project)
    if not isinstance(setup, Setup):
        setup = Setup()
    for variable, value in setup.env.items():
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)
    config = setup.config or project
    message = (
        expected.replace("{config}", str(config))
        .replace("{lock}", str(lock))
        .replace("{project}", str(project.parent))
        .replace("{parent}", str(project.parent.parent))
    )
    before = snapshot(lock)
    for command in (["plan"], ["apply", "--auto-approve"], ["validate"]):
        if command == ["validate"] and message.startswith("Error: "):
            continue  # validate reads no lockfile
        result = cli(*command, "-c", config)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert result.stderr.splitlines()[0] == message
        assert "Traceback" not in result.output
        for secret in setup.env.values():  # a malformed secret is named, never shown
            if secret and CANARY_TOKEN in secret:
                assert CANARY_TOKEN not in result.output
        assert snapshot(lock) == before
    assert [c for c in cf_env.request_log if "/accounts/" in c[1]] == []


def test_plan_file_from_another_config(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    planfile = tmp_path / "other.plan"
    assert cli("plan", "-c", project, "-o", planfile).exit_code == 0
    other = project.parent / "other.yaml"
    other.write_text(project.read_text().replace("name: faq-bot-v1", "name: faq-bot-v2"))
    result = cli("apply", planfile, "-c", other)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: the plan {planfile} was made for {project}, not {other}; "
        "apply it with that config, or make a new plan"
    )
    assert not other.with_suffix(".lock").exists()
    assert [c for c in cf_env.request_log if c[0] == "POST"] == []


def test_no_account_anywhere(
    cli: Cli, cf_env: SandboxServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID")
    project.write_text(
        project.read_text().replace("    account_id: ${CLOUDFLARE_ACCOUNT_ID}\n", "")
    )
    result = cli("plan", "-c", project)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{project}:7:5: error: finetune 'support-bot-v3': no cloudflare account id; set "
        "providers.cloudflare.account_id in the config or CLOUDFLARE_ACCOUNT_ID in the environment"
    )
