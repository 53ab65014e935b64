"""Versions at the edges found in review: what is recorded must stay true to the account when
a current version vanishes, a first version fails, pruning meets prevent_destroy, keep meets a
failed version, an outputs: file cannot be written, and messages name the logical finetune."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import Cli
from test_lifecycle import dashboard
from test_versions_cli import WEIGHTS, flip_last_byte, ok, output

from reconciler.sandbox.server import SandboxServer


def test_refresh_only_keeps_the_retired_versions_when_the_current_one_is_gone(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    first = output(cli, versioned)["support-bot-v3"]["name"]
    flip_last_byte(versioned.parent / WEIGHTS)
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    second = output(cli, versioned)["support-bot-v3"]["name"]
    dashboard(
        cf_env,
        "DELETE FROM assets WHERE finetune_id IN (SELECT id FROM finetunes WHERE name = ?)",
        second,
    )
    dashboard(cf_env, "DELETE FROM finetunes WHERE name = ?", second)
    ok(cli("apply", "-c", versioned, "--refresh-only", "--auto-approve"))
    lock = json.loads(versioned.with_suffix(".lock").read_text())
    assert "support-bot-v3" not in lock["finetunes"]  # the gone current one is dropped...
    (kept,) = lock["versions"]["support-bot-v3"].values()
    assert kept["remote_name"] == first  # ...and the retired one, still there, is kept
    planned = cli("plan", "-c", versioned)
    assert "Unmanaged" not in planned.stdout
    assert "not in the lockfile" not in planned.stdout


def test_a_first_version_that_failed_can_be_forgotten_and_is_forgotten_when_removed(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    text = versioned.read_text().replace("not_contains: error", "matches: no-model-says-this")
    versioned.write_text(text)
    assert cli("apply", "-c", versioned, "--auto-approve").exit_code == 1
    lock = json.loads(versioned.with_suffix(".lock").read_text())
    assert "support-bot-v3" not in lock["finetunes"]
    assert [v["state"] for v in lock["versions"]["support-bot-v3"].values()] == ["failed"]
    start, end = text.index("  - name: support-bot-v3"), text.index("  - name: faq-bot-v1")
    versioned.write_text(text[:start] + text[end:])  # removed from the config
    planned = cli("plan", "-c", versioned, "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "support-bot-v3 will be forgotten" in planned.stdout
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    lock = json.loads(versioned.with_suffix(".lock").read_text())
    assert "versions" not in lock
    assert cli("plan", "-c", versioned, "--detailed-exitcode").exit_code == 0


def test_forget_takes_a_finetune_with_only_a_failed_version(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    versioned.write_text(
        versioned.read_text().replace("not_contains: error", "matches: no-model-says-this")
    )
    assert cli("apply", "-c", versioned, "--auto-approve").exit_code == 1
    ok(cli("forget", "support-bot-v3", "-c", versioned))
    assert "versions" not in json.loads(versioned.with_suffix(".lock").read_text())


def test_an_outputs_file_that_cannot_be_written_is_a_clear_error(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    (versioned.parent / "worker" / "loras.json").mkdir(parents=True)  # a folder in its place
    result = cli("apply", "-c", versioned, "--auto-approve")
    assert result.exit_code == 1
    assert "Internal error" not in result.stderr
    assert "an outputs: file could not be written (Is a directory" in result.stderr
    assert "ok  support-bot-v3: promote: current:" in result.stdout  # done, and recorded
    (versioned.parent / "worker" / "loras.json").rmdir()
    ok(cli("apply", "-c", versioned, "--auto-approve"))  # nothing to apply: the file is written
    assert json.loads((versioned.parent / "worker" / "loras.json").read_text())


def test_the_confirm_hint_of_an_imported_version_names_the_logical_finetune(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    ok(cli("forget", "support-bot-v3", "-c", versioned))
    ok(cli("import", "support-bot-v3", "-c", versioned))
    planned = cli("plan", "-c", versioned)
    hint = re.search(r"`reconciler import (\S+) --confirm`", planned.stdout)
    assert hint is not None and hint.group(1) == "support-bot-v3"
    ok(cli("import", hint.group(1), "--confirm", "-c", versioned))


def test_a_saved_plan_made_before_versioning_was_turned_on_is_stale_not_edited(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    saved = project.parent / "p.plan"
    assert cli("plan", "-c", project, "-o", saved).exit_code == 0
    project.write_text(
        project.read_text().replace(
            "version: 1\n", "version: 1\nsettings:\n  versioning: content\n"
        )
    )
    result = cli("apply", saved)
    assert result.exit_code == 1
    assert "the file was edited" not in result.stderr
    assert "is stale" in result.stderr
