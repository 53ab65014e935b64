"""Drift, import, forget and the apply lock, end to end on the sandbox."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from conftest import ACCOUNT, Cli

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer
from reconciler.state.runlock import exclusive


def dashboard(sandbox: SandboxServer, sql: str, *args: object) -> None:
    """What someone clicking in the Cloudflare dashboard would do: there is no API for it."""
    with sqlite3.connect(sandbox.data_dir / "sandbox.sqlite3") as db:
        db.execute(sql, args)


def create_remote(
    sandbox: SandboxServer, name: str, model: str = "@cf/google/gemma-2b-it-lora"
) -> str:
    response = httpx.post(
        f"{sandbox.cloudflare_base_url}/accounts/{ACCOUNT}/ai/finetunes",
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        json={"name": name, "model": model, "description": "Answers from the product FAQ"},
    )
    response.raise_for_status()
    return str(response.json()["result"]["id"])


def test_drift_reports_gone_changed_and_unmanaged(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    clean = cli("drift", "-c", project)
    assert clean.exit_code == 0
    assert clean.stdout == "No drift: the accounts match the lockfile.\n"

    dashboard(
        cf_env,
        "DELETE FROM assets WHERE finetune_id IN (SELECT id FROM finetunes WHERE name = ?)",
        "faq-bot-v1",
    )
    dashboard(cf_env, "DELETE FROM finetunes WHERE name = ?", "faq-bot-v1")
    dashboard(
        cf_env,
        "UPDATE finetunes SET description = 'edited by hand' WHERE name = ?",
        "support-bot-v3",
    )
    create_remote(cf_env, "stray")
    lock_before = project.with_suffix(".lock").read_bytes()

    result = cli("drift", "-c", project)
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        "- cloudflare.faq-bot-v1 (gone): no longer in the account",
        "~ cloudflare.support-bot-v3 (changed): description changed",
        '    description: "Support tone adapter, trained 2026-11" -> "edited by hand"',
        "? cloudflare.stray (unmanaged): in the account but not in the lockfile",
        "Drift: 1 gone, 0 replaced, 1 changed, 1 unmanaged.",
    ]
    as_json = json.loads(cli("plan", "-c", project, "--refresh-only", "--format", "json").stdout)
    assert [(d["address"], d["kind"]) for d in as_json["drift"]] == [
        ("cloudflare.faq-bot-v1", "gone"),
        ("cloudflare.support-bot-v3", "changed"),
        ("cloudflare.stray", "unmanaged"),
    ]
    assert project.with_suffix(".lock").read_bytes() == lock_before


def test_import_records_unverified_assets_until_confirmed(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    remote_id = create_remote(cf_env, "faq-bot-v1")  # made by hand, e.g. with wrangler
    blocked = cli("plan", "-c", project)
    assert blocked.exit_code == 1
    assert "already exists in account" in blocked.stdout

    imported = cli("import", "faq-bot-v1", "-c", project)
    assert imported.exit_code == 0, imported.output
    assert f"Imported faq-bot-v1 (id {remote_id})" in imported.stdout
    assert "reconciler import faq-bot-v1 --confirm" in imported.stdout
    entry = json.loads(project.with_suffix(".lock").read_text())["finetunes"]["faq-bot-v1"]
    assert entry["id"] == remote_id
    assert {a["verified"] for a in entry["assets"].values()} == {False}

    plan = cli("plan", "-c", project)
    assert "Plan: 1 to create, 0 to upload, 0 to forget, 1 unchanged." in plan.stdout
    assert "came from `reconciler import`" in plan.stdout

    assert cli("import", "faq-bot-v1", "-c", project, "--confirm").exit_code == 0
    entry = json.loads(project.with_suffix(".lock").read_text())["finetunes"]["faq-bot-v1"]
    assert all("verified" not in a for a in entry["assets"].values())
    assert "came from `reconciler import`" not in cli("plan", "-c", project).stdout

    again = cli("import", "faq-bot-v1", "-c", project)
    assert again.exit_code == 1 and "already in the lockfile" in again.stderr
    missing = cli("import", "support-bot-v3", "-c", project)
    assert missing.exit_code == 1 and "nothing to import" in missing.stderr


def test_forget_drops_from_the_lock_and_warns_if_still_declared(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    result = cli("forget", "faq-bot-v1", "-c", project)
    assert result.exit_code == 0
    assert "Forgot faq-bot-v1" in result.stdout
    assert "still declares faq-bot-v1" in result.stderr
    assert list(json.loads(project.with_suffix(".lock").read_text())["finetunes"]) == [
        "support-bot-v3"
    ]
    assert cli("forget", "faq-bot-v1", "-c", project).exit_code == 1


def test_apply_waits_for_the_lock_then_names_the_holder(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    lock = project.with_suffix(".lock")
    with exclusive(lock, timeout=1):
        result = cli("apply", "-c", project, "--auto-approve", "--lock-timeout", "0.3")
    assert result.exit_code == 1
    assert f"{lock} is being changed by reconciler" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert not lock.exists()
    assert [c for c in cf_env.request_log if c[0] == "POST"] == []

    released = threading.Event()

    def hold_briefly() -> None:
        with exclusive(lock, timeout=1):
            released.wait(0.5)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    try:
        waited = cli("apply", "-c", project, "--auto-approve", "--lock-timeout", "30")
    finally:
        released.set()
        holder.join()
    assert waited.exit_code == 0, waited.output


def test_concurrent_applies_leave_one_consistent_lockfile(
    cf_env: SandboxServer, project: Path
) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "apply",
        "-c",
        str(project),
        "--auto-approve",
        "--lock-timeout",
        "60",
    ]
    procs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    combined = "".join(out for out, _ in outputs)
    assert combined.count("Apply complete: 2 created, 4 uploaded") == 1
    assert combined.count("Nothing to apply.") == 1
    creates = [c for c in cf_env.request_log if c[0] == "POST" and c[1].endswith("/ai/finetunes")]
    assert len(creates) == 2
    lock = json.loads(project.with_suffix(".lock").read_text())
    assert sorted(lock["finetunes"]) == ["faq-bot-v1", "support-bot-v3"]
    assert all(len(f["assets"]) == 2 for f in lock["finetunes"].values())
    final = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "-c", str(project), "--detailed-exitcode"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert final.returncode == 0, final.stdout + final.stderr
