"""A saved plan cannot be narrowed by editing it (M2 of issue 20).

`apply PLANFILE --target` is refused; cutting the file's `targets` and `plan.changes` down
together used to pass, since what remains equals a plan made with `--target`: a reviewed
"create the new one and delete the old one" ran as the delete only, exit 0. The file now
carries the sha256 of its whole content, and an edit that does not also recompute it is
refused, naming what the file leaves out. Formatting is no edit: the digest is over the
content, not the bytes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_TOKEN, ROOT, Cli

from reconciler.sandbox.server import SandboxServer


def writes(sandbox: SandboxServer) -> int:
    return len([c for c in sandbox.request_log if c[0] != "GET"])


def make_plan(cli: Cli, config: Path, planfile: Path, *extra: str) -> dict[str, Any]:
    made = cli("plan", "-c", config, "-o", planfile, *extra)
    assert made.exit_code == 0, made.output
    data: dict[str, Any] = json.loads(planfile.read_text())
    return data


def narrow(data: dict[str, Any], keep: str) -> None:
    """The edit of the review: `targets` and `plan.changes` cut to one finetune together."""
    data["targets"] = [t for t in data["targets"] if t.endswith(f".{keep}")]
    data["plan"]["changes"] = [c for c in data["plan"]["changes"] if c["name"] == keep]
    assert data["targets"] and data["plan"]["changes"]


def refused(cli: Cli, sandbox: SandboxServer, config: Path, planfile: Path, *extra: str) -> str:
    lock = config.with_suffix(".lock")
    before_lock = lock.read_bytes() if lock.exists() else None
    before = writes(sandbox)
    result = cli("apply", planfile, "-c", config, *extra)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Nothing was applied" in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert writes(sandbox) == before
    assert (lock.read_bytes() if lock.exists() else None) == before_lock
    return result.stderr


def test_a_plan_narrowed_to_one_of_two_creates_is_refused(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    narrow(data, "faq-bot-v1")
    planfile.write_text(json.dumps(data, indent=2, sort_keys=True))
    message = refused(cli, cf_env, project, planfile)
    assert f"the saved plan {planfile} does not match what the current inputs plan" in message
    assert "the file leaves out cloudflare.support-bot-v3 (create)" in message
    assert "no longer has the sha256 it was saved with: the file was edited" in message


def test_a_narrowed_plan_lists_at_most_twenty_left_out_changes(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    text = project.read_text()
    block = text[text.index("  - name: faq-bot-v1") :]
    project.write_text(
        text + "".join(block.replace("faq-bot-v1", f"faq-bot-{i:02}") for i in range(25))
    )
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    narrow(data, "faq-bot-v1")
    planfile.write_text(json.dumps(data))
    message = refused(cli, cf_env, project, planfile)
    assert message.count("the file leaves out") == 20
    assert "and 6 more difference(s)" in message


def test_a_reformatted_plan_still_applies(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    """Indentation, key order and escapes are not content: the digest holds."""
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    planfile.write_text(json.dumps(dict(reversed(list(data.items()))), ensure_ascii=True))
    applied = cli("apply", planfile, "-c", project)
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 2 created, 4 uploaded, 0 forgotten." in applied.stdout


@pytest.mark.parametrize(
    ("seal", "expected"),
    [
        (None, "carries no sha256 of its content"),
        (17, "carries no sha256 of its content"),
        ("sha256:" + "0" * 64, "no longer has the sha256 it was saved with"),
    ],
)
def test_a_plan_without_its_digest_or_with_another_is_refused(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path, seal: Any, expected: str
) -> None:
    """Untouched otherwise: the seal alone decides, so removing it is no way around it."""
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    assert data["sha256"].startswith("sha256:")
    if seal is None:
        del data["sha256"]
    else:
        data["sha256"] = seal
    planfile.write_text(json.dumps(data))
    assert expected in refused(cli, cf_env, project, planfile)


def test_show_of_a_narrowed_plan_still_renders_it(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    """show reads a plan file without applying it: an edited one is shown, as it always was."""
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    narrow(data, "faq-bot-v1")
    planfile.write_text(json.dumps(data))
    shown = cli("show", planfile, "-c", project)
    assert shown.exit_code == 0, shown.output
    assert "faq-bot-v1" in shown.stdout and "support-bot-v3" not in shown.stdout


# --- the review's own case: a rename planned as "create new + delete old" (Cohere deletes) ---

EXAMPLE = ROOT / "examples" / "cohere"


@pytest.fixture
def cohere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "remote", tokens=(CANARY_TOKEN,), clock_speed=300) as server:
        monkeypatch.setenv("CO_API_KEY", CANARY_TOKEN)
        monkeypatch.setenv("CO_API_URL", server.url)
        monkeypatch.setenv("RECONCILER_POLL_INTERVAL", "0.02")
        yield server


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(
        EXAMPLE, tmp_path / "project", ignore=shutil.ignore_patterns(".reconciler", "*.lock")
    )
    return tmp_path / "project" / "finetunes.yaml"


def test_create_new_and_delete_old_cannot_be_cut_to_the_delete(
    cli: Cli, cohere: SandboxServer, config: Path, tmp_path: Path
) -> None:
    applied = cli("apply", "-c", config, "--auto-approve", "--wait")
    assert applied.exit_code == 0, applied.output
    config.write_text(config.read_text().replace("name: support-chat", "name: support-chat-2"))
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, config, planfile, "--prune")
    actions = {c["name"]: c["action"] for c in data["plan"]["changes"]}
    assert actions["support-chat-2"] == "create" and actions["support-chat"] == "delete"

    narrow(data, "support-chat")  # the delete only
    planfile.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    message = refused(cli, cohere, config, planfile, "--prune")
    assert "the file leaves out cohere.support-chat-2 (create)" in message
    assert "support-chat" in json.loads(config.with_suffix(".lock").read_text())["finetunes"]


def test_an_untouched_plan_of_the_delete_alone_still_applies(
    cli: Cli, cohere: SandboxServer, config: Path, tmp_path: Path
) -> None:
    """What --target makes is not narrowing: that plan was reviewed as it is."""
    assert cli("apply", "-c", config, "--auto-approve", "--wait").exit_code == 0
    config.write_text(config.read_text().replace("name: support-chat", "name: support-chat-2"))
    planfile = tmp_path / "review.plan"
    make_plan(cli, config, planfile, "--prune", "--target", "support-chat")
    applied = cli("apply", planfile, "-c", config, "--prune")
    assert applied.exit_code == 0, applied.output
    assert "support-chat" not in json.loads(config.with_suffix(".lock").read_text())["finetunes"]
