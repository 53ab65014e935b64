"""The issue's acceptance path, end to end through the CLI over real HTTP to the sandbox."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from conftest import ACCOUNT, Cli

from reconciler.sandbox.server import SandboxServer


def lock_of(config: Path) -> dict:
    return json.loads(config.with_suffix(".lock").read_text())


def sha256_of(path: Path) -> str:
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plan_shows_two_creates_and_makes_no_change(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    result = cli("plan", "-c", project, "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert 'finetune "support-bot-v3"' in result.stdout
    assert 'finetune "faq-bot-v1"' in result.stdout
    assert result.stdout.count("will be created") == 2
    assert "Plan: 2 to create, 0 to upload, 0 to forget, 0 unchanged." in result.stdout
    assert not project.with_suffix(".lock").exists()
    # for the one account: one catalogue read (cold cache) and one list call, nothing else
    calls = [c for c in cf_env.request_log if "/ai/" in c[1]]
    assert calls == [
        ("GET", f"/client/v4/accounts/{ACCOUNT}/ai/models/search"),
        ("GET", f"/client/v4/accounts/{ACCOUNT}/ai/finetunes"),
    ]


def test_apply_creates_uploads_locks_and_converges(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    result = cli("apply", "-c", project, "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete: 2 created, 4 uploaded, 0 forgotten." in result.stdout

    creates = [c for c in cf_env.request_log if c[0] == "POST" and c[1].endswith("/ai/finetunes")]
    uploads = [c for c in cf_env.request_log if c[1].endswith("/finetune-assets")]
    assert len(creates) == 2 and len(uploads) == 4

    lock = lock_of(project)
    assert lock["format_version"] == 1
    assert sorted(lock["finetunes"]) == ["faq-bot-v1", "support-bot-v3"]
    remote = {f["name"]: f for f in _list(cf_env)}
    for name, folder in (("support-bot-v3", "support-v3"), ("faq-bot-v1", "faq-v1")):
        entry = lock["finetunes"][name]
        assert entry["id"] == remote[name]["id"]
        assert entry["account"] == ACCOUNT and entry["provider"] == "cloudflare"
        for file in ("adapter_config.json", "adapter_model.safetensors"):
            path = project.parent / "adapters" / folder / file
            assert entry["assets"][file] == {
                "sha256": "sha256:" + sha256_of(path),
                "size": path.stat().st_size,
            }
    # the lockfile is normalised: what we write is what sorted JSON would be
    text = project.with_suffix(".lock").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"

    again = cli("plan", "-c", project, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout
    assert "Plan: 0 to create, 0 to upload, 0 to forget, 2 unchanged." in again.stdout

    second = cli("apply", "-c", project, "--auto-approve")
    assert second.exit_code == 0
    assert "Nothing to apply." in second.stdout
    assert len([c for c in cf_env.request_log if c[0] == "POST"]) == 6  # no new calls


def test_missing_asset_record_plans_exactly_that_upload(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    lock_path = project.with_suffix(".lock")
    lock = json.loads(lock_path.read_text())
    del lock["finetunes"]["faq-bot-v1"]["assets"]["adapter_model.safetensors"]
    lock_path.write_text(json.dumps(lock))

    result = cli("plan", "-c", project, "--detailed-exitcode")
    assert result.exit_code == 2
    assert "Plan: 0 to create, 1 to upload, 0 to forget, 1 unchanged." in result.stdout
    assert '~ finetune "faq-bot-v1"' in result.stdout
    assert 'asset "adapter_model.safetensors"' in result.stdout
    assert 'asset "adapter_config.json"' not in result.stdout

    applied = cli("apply", "-c", project, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 0 created, 1 uploaded, 0 forgotten." in applied.stdout
    assert cli("plan", "-c", project, "--detailed-exitcode").exit_code == 0


def test_embedded_sandbox_persists_between_commands(cli: Cli, project: Path, monkeypatch) -> None:
    for var in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    first = cli("apply", "-c", project, "--sandbox", "--auto-approve")
    assert first.exit_code == 0, first.output
    assert (project.parent / ".reconciler" / "sandbox").is_dir()
    assert lock_of(project)["endpoints"] == {"cloudflare": "sandbox"}
    second = cli("plan", "-c", project, "--sandbox", "--detailed-exitcode")
    assert second.exit_code == 0, second.output


def test_sandbox_lockfile_is_not_mixed_with_a_real_endpoint(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--sandbox", "--auto-approve").exit_code == 0
    before = project.with_suffix(".lock").read_bytes()
    result = cli("plan", "-c", project)
    assert result.exit_code == 1
    assert "made against sandbox" in result.stderr
    assert project.with_suffix(".lock").read_bytes() == before


def _list(sandbox: SandboxServer) -> list[dict]:
    import httpx

    response = httpx.get(
        f"{sandbox.cloudflare_base_url}/accounts/{ACCOUNT}/ai/finetunes",
        headers={"Authorization": "Bearer reconciler-sandbox-token"},
    )
    return response.json()["result"]
