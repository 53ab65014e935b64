"""Adapters from a Hugging Face Hub repo (the sandbox's Hub at /hf): pinned by revision, planned
from metadata and headers only, applied with every byte verified, recorded with the commit."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CANARY_TOKEN, QUICKSTART, Cli

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer

REPO = "acme/support-lora"
ADAPTER = QUICKSTART / "adapters" / "support-v3"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def sha256sum(path: Path) -> str:
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_config(folder: Path, adapter: str, versioning: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "finetunes.yaml"
    extra = f"    versioning: {versioning}\n" if versioning else ""
    config.write_text(
        "version: 1\n"
        "providers:\n  cloudflare:\n    account_id: ${CLOUDFLARE_ACCOUNT_ID}\n"
        "finetunes:\n"
        "  - name: support-bot\n"
        "    provider: cloudflare\n"
        f'    model: "{MODEL}"\n'
        f"{extra}"
        f"    adapter:\n{adapter}"
    )
    return config


def push(cli: Cli, data: Path, folder: Path, tag: str | None = "v1") -> str:
    result = cli(
        "sandbox", "hf-push", REPO, folder, "--data", data, *(["--tag", tag] if tag else [])
    )
    assert result.exit_code == 0, result.output
    sha = result.stdout.splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    return sha


@pytest.fixture
def hub_env(
    cf_env: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> SandboxServer:
    monkeypatch.setenv("HF_ENDPOINT", cf_env.hub_url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # never the user's cache
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # a token the sandbox serves, as a user's would be (and never printed: Cli checks), so a
    # login saved on this machine is never sent, which the sandbox's Hub would refuse (401)
    monkeypatch.setenv("HF_TOKEN", CANARY_TOKEN)
    return cf_env


def weight_bytes_read(sandbox: SandboxServer, start: int = 0) -> list[tuple[str | None, int]]:
    return [
        (s.range, s.bytes)
        for s in sandbox.hub_log[start:]
        if s.method == "GET" and s.path.endswith(WEIGHTS) and s.status in (200, 206)
    ]


def header_length(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def test_tag_plans_from_metadata_applies_and_locks_the_pushed_digests(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path
) -> None:
    data = tmp_path / "sandbox-data"
    sha = push(cli, data, ADAPTER)
    config = write_config(tmp_path / "project", f"      hf: {REPO}\n      revision: v1\n")

    planned = cli("plan", "-c", config, "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert f"from hf://{REPO}@{sha[:7]}" in planned.stdout  # the plan names the commit
    assert "moves" not in planned.output  # a tag: no warning
    # plan read the weights' header and nothing past it: two Range reads, 8 + N bytes in all
    reads = weight_bytes_read(hub_env)
    assert [r for r, _ in reads] == ["bytes=0-7", f"bytes=8-{header_length(ADAPTER / WEIGHTS) - 1}"]
    assert sum(n for _, n in reads) == header_length(ADAPTER / WEIGHTS)
    assert header_length(ADAPTER / WEIGHTS) < (ADAPTER / WEIGHTS).stat().st_size

    # warm: only the tag's refs call, nothing read of any file
    before = len(hub_env.hub_log)
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 2
    assert [s.path for s in hub_env.hub_log[before:]] == [f"/hf/api/models/{REPO}/refs"]

    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    lock = json.loads(config.with_suffix(".lock").read_text())
    assets = lock["finetunes"]["support-bot"]["assets"]
    for name in (CONFIG, WEIGHTS):
        assert assets[name]["sha256"] == "sha256:" + sha256sum(ADAPTER / name)
        assert assets[name]["source"] == f"hf://{REPO}@{sha}/{name}"
    stored = hub_env.store.list_assets(lock["finetunes"]["support-bot"]["id"])
    assert {a.file_name: a.sha256 for a in stored} == {
        n: sha256sum(ADAPTER / n) for n in (CONFIG, WEIGHTS)
    }
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_a_new_commit_on_the_tag_shows_new_content_and_stales_a_saved_plan(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path
) -> None:
    data = tmp_path / "sandbox-data"
    push(cli, data, ADAPTER)
    config = write_config(tmp_path / "project", f"      hf: {REPO}\n      revision: v1\n")
    saved = tmp_path / "review.plan"
    assert cli("plan", "-c", config, "-o", saved).exit_code == 0

    changed = tmp_path / "v2"
    shutil.copytree(ADAPTER, changed)
    settings = json.loads((changed / CONFIG).read_text())
    settings["lora_alpha"] = 99
    (changed / CONFIG).write_text(json.dumps(settings))
    new = push(cli, data, changed)  # the tag moves to the new commit

    stale = cli("apply", saved, "-c", config)
    assert stale.exit_code != 0
    assert f"hf://{REPO}@v1 moved" in stale.output
    assert "Nothing was applied" in stale.output

    planned = cli("plan", "-c", config)
    assert f"from hf://{REPO}@{new[:7]}" in planned.stdout
    assert "sha256:" + sha256sum(changed / CONFIG)[:12] in planned.stdout


def test_a_branch_warns_that_it_moves(cli: Cli, hub_env: SandboxServer, tmp_path: Path) -> None:
    push(cli, tmp_path / "sandbox-data", ADAPTER, tag=None)
    config = write_config(tmp_path / "project", f"      hf: {REPO}\n")  # main, by default
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 0, planned.output
    assert "main is a branch, and a branch moves: pin a commit or tag" in planned.stdout


def test_missing_repo_revision_and_file_are_config_errors_at_the_line(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path
) -> None:
    data = tmp_path / "sandbox-data"
    push(cli, data, ADAPTER)
    cases = {
        "      hf: acme/nothing-here\n      revision: v1\n": "no such repo",
        f"      hf: {REPO}\n      revision: v9\n": "the repo has no tag or branch v9",
        f"      hf: {REPO}\n      revision: v1\n      subfolder: ckpt\n": (
            f"{CONFIG}: not found in the adapter folder"
        ),
        f"      hf: {REPO}\n      revision: 3f2a91c\n": "full 40-hex sha",
    }
    for adapter, message in cases.items():
        config = write_config(tmp_path / "project", adapter)
        result = cli("plan", "-c", config)
        assert result.exit_code == 1, result.output
        assert f"{config}:6:5: error: finetune 'support-bot': adapter " in result.stderr
        assert message in result.stderr, result.stderr


def test_a_pinned_commit_plans_offline_and_a_tag_from_what_was_seen(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = push(cli, tmp_path / "sandbox-data", ADAPTER)
    pinned = write_config(tmp_path / "pinned", f"      hf: {REPO}\n      revision: {sha}\n")
    tagged = write_config(tmp_path / "tagged", f"      hf: {REPO}\n      revision: v1\n")
    for config in (pinned, tagged):
        assert cli("plan", "-c", config).exit_code == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub_env.hub_log)
    offline = cli("plan", "-c", pinned)
    assert offline.exit_code == 0 and f"hf://{REPO}@{sha[:7]}" in offline.stdout
    offline = cli("plan", "-c", tagged)
    assert offline.exit_code == 0, offline.output
    assert "HF_HUB_OFFLINE is set: tag v1 taken as" in offline.stdout
    assert hub_env.hub_log[before:] == []  # nothing sent
    never = write_config(tmp_path / "never", f"      hf: {REPO}\n      revision: main\n")
    refused = cli("plan", "-c", never)
    assert refused.exit_code == 1 and "never resolved online here" in refused.stderr


def test_sandbox_flag_serves_its_hub(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "CLOUDFLARE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_real_token_that_must_never_reach_the_sandbox")
    config = write_config(tmp_path / "project", f"      hf: {REPO}\n      revision: v1\n")
    sha = push(cli, config.parent / ".reconciler" / "sandbox", ADAPTER)
    applied = cli("apply", "-c", config, "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert f"hf://{REPO}@{sha[:7]}" in applied.stdout
    assert "hf_real_token" not in applied.output


def test_missing_huggingface_hub_names_the_extra(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push(cli, tmp_path / "sandbox-data", ADAPTER)
    config = write_config(tmp_path / "project", f"      hf: {REPO}\n      revision: v1\n")
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)
    result = cli("plan", "-c", config)
    assert result.exit_code == 1
    assert "pip install 'finetune-reconciler[hf]'" in result.stderr


def test_import_records_the_digests_of_a_hub_adapter(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path
) -> None:
    push(cli, tmp_path / "sandbox-data", ADAPTER)
    config = write_config(tmp_path / "project", f"      hf: {REPO}\n      revision: v1\n")
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    assert cli("forget", "support-bot", "-c", config).exit_code == 0
    imported = cli("import", "support-bot", "-c", config, "--confirm")
    assert imported.exit_code == 0, imported.output
    lock = json.loads(config.with_suffix(".lock").read_text())["finetunes"]["support-bot"]
    assert lock["assets"][WEIGHTS]["sha256"] == "sha256:" + sha256sum(ADAPTER / WEIGHTS)
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_a_new_commit_on_the_tag_is_a_new_version_when_versioning_is_on(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path
) -> None:
    data = tmp_path / "sandbox-data"
    push(cli, data, ADAPTER)
    config = write_config(
        tmp_path / "project", f"      hf: {REPO}\n      revision: v1\n", versioning="content"
    )
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    first = json.loads(cli("output", "-c", config).stdout)["support-bot"]["name"]

    changed = tmp_path / "v2"
    shutil.copytree(ADAPTER, changed)
    settings = json.loads((changed / CONFIG).read_text())
    settings["lora_alpha"] = 99
    (changed / CONFIG).write_text(json.dumps(settings))
    push(cli, data, changed)  # the tag moves to a new commit with new content

    planned = cli("plan", "-c", config)
    assert planned.exit_code == 0, planned.output
    assert "adapter_config.json content changed: new version support-bot-" in planned.stdout
    assert f"supersedes {first}" in planned.stdout
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    second = json.loads(cli("output", "-c", config).stdout)["support-bot"]["name"]
    assert second != first
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    ("revision", "kind", "option"),
    [("release/v3", "branch", "--branch=release/v3"), ("refs/pr/1", "pull request", "--pr")],
)
def test_a_branch_with_a_slash_or_a_pull_request_plans_applies_and_locks_its_commit(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path, revision: str, kind: str, option: str
) -> None:
    data = tmp_path / "sandbox-data"
    push(cli, data, ADAPTER, tag=None)  # main
    changed = tmp_path / "v3"
    shutil.copytree(ADAPTER, changed)
    settings = json.loads((changed / CONFIG).read_text())
    settings["lora_alpha"] = 99
    (changed / CONFIG).write_text(json.dumps(settings))
    pushed = cli("sandbox", "hf-push", REPO, changed, "--data", data, option)
    assert f"({revision})" in pushed.stdout, pushed.output
    commit = pushed.stdout.splitlines()[-1]

    config = write_config(tmp_path / "project", f"      hf: {REPO}\n      revision: {revision}\n")
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 0, planned.output
    assert f"from hf://{REPO}@{commit[:7]}" in planned.stdout
    assert f"{revision} is a {kind}, and a {kind} moves" in planned.stdout
    assert "sha256:" + sha256sum(changed / CONFIG)[:12] in planned.stdout  # its bytes, not main's
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    lock = json.loads(config.with_suffix(".lock").read_text())
    assets = lock["finetunes"]["support-bot"]["assets"]
    for name in (CONFIG, WEIGHTS):
        assert assets[name]["source"] == f"hf://{REPO}@{commit}/{name}"
        assert assets[name]["sha256"] == "sha256:" + sha256sum(changed / name)
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0

    other = "refs/pr/9" if kind == "pull request" else "release/v4"
    config = write_config(tmp_path / "other", f"      hf: {REPO}\n      revision: {other}\n")
    missing = cli("plan", "-c", config)
    assert missing.exit_code == 1
    expected = (
        "the repo has no pull request refs/pr/9 (pull requests: refs/pr/1)"
        if kind == "pull request"
        else "the repo has no tag or branch release/v4 (tags: none; branches: main, release/v3)"
    )
    assert expected in missing.stderr, missing.stderr


def test_gated_private_and_bad_token_say_what_is_wrong_without_a_traceback(
    cli: Cli, hub_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "sandbox-data"
    push(cli, data, ADAPTER)
    granted = ("--grant", DEFAULT_TOKEN)
    result = cli("sandbox", "hf-push", REPO, ADAPTER, "--data", data, "--gated", *granted)
    assert result.exit_code == 0, result.output
    gated = write_config(tmp_path / "gated", f"      hf: {REPO}\n      revision: v1\n")
    private = "acme/private-lora"
    cli("sandbox", "hf-push", private, ADAPTER, "--data", data, "--private", *granted)
    hidden = write_config(tmp_path / "private", f"      hf: {private}\n")

    for token, config, message in (
        ("", gated, "the repo is gated and no token was sent"),
        (
            CANARY_TOKEN,
            gated,
            "the repo is gated and the token sent (HF_TOKEN, or the saved "
            "login) has no access to its files",
        ),
        ("hf_wrong_token", gated, "refused the token as invalid (HTTP 401): check HF_TOKEN"),
        ("", hidden, "no such repo at"),
        (CANARY_TOKEN, hidden, "(or it is private or gated and HF_TOKEN"),
    ):
        monkeypatch.setenv("HF_TOKEN", token)
        result = cli("plan", "-c", config)
        assert result.exit_code == 1, result.output
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.output
        assert f"{config}:6:5: error: finetune 'support-bot': adapter " in result.stderr
        assert "hf_wrong_token" not in result.output
    monkeypatch.setenv("HF_TOKEN", DEFAULT_TOKEN)  # the token each repo grants
    assert cli("plan", "-c", hidden).exit_code == 0
    applied = cli("apply", "-c", gated, "--auto-approve")  # every byte read, through the gate
    assert applied.exit_code == 0, applied.output


def test_sandbox_flag_meets_a_gated_repo_with_the_gated_message(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "CLOUDFLARE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    config = write_config(tmp_path / "project", f"      hf: {REPO}\n      revision: v1\n")
    data = config.parent / ".reconciler" / "sandbox"
    result = cli("sandbox", "hf-push", REPO, ADAPTER, "--data", data, "--tag", "v1", "--gated")
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("HF_TOKEN", "hf_real_token_that_must_never_reach_the_sandbox")
    planned = cli("plan", "-c", config, "--sandbox")  # --sandbox sends its own token
    assert planned.exit_code == 1
    assert f"hf://{REPO}@" in planned.stderr
    assert "gated" in planned.stderr and "no access" in planned.stderr
    assert "hf_real_token" not in planned.output
    assert "Traceback" not in planned.output
    granted = cli(
        "sandbox", "hf-push", REPO, ADAPTER, "--data", data, "--tag", "v1", "--grant", DEFAULT_TOKEN
    )
    assert granted.exit_code == 0, granted.output
    assert cli("plan", "-c", config, "--sandbox").exit_code == 0  # the sandbox's user has access
