"""Adapters as files at URLs, each with the sha256 it must have: plan downloads no weights,
apply refuses (creating nothing) a file whose bytes are not the declared ones."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import QUICKSTART, Cli

from reconciler.sandbox.hub.store import HubStore
from reconciler.sandbox.server import SandboxServer

REPO = "acme/releases"
ADAPTER = QUICKSTART / "adapters" / "support-v3"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_config(folder: Path, files: dict[str, tuple[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        f"          {name}:\n            url: {url}\n            sha256: {sha}\n"
        for name, (url, sha) in files.items()
    )
    config = folder / "finetunes.yaml"
    config.write_text(
        "version: 1\n"
        "providers:\n  cloudflare:\n    account_id: ${CLOUDFLARE_ACCOUNT_ID}\n"
        "finetunes:\n"
        "  - name: support-bot\n"
        "    provider: cloudflare\n"
        f'    model: "{MODEL}"\n'
        f"    adapter:\n      files:\n{lines}"
    )
    return config


@pytest.fixture
def urls(cf_env: SandboxServer) -> dict[str, str]:
    """Each file served over plain HTTP on loopback (the weights through a redirect)."""
    commit = HubStore(cf_env.data_dir).push(REPO, ADAPTER)
    return {n: f"{cf_env.hub_url}/{REPO}/resolve/{commit}/{n}" for n in (CONFIG, WEIGHTS)}


def creates(sandbox: SandboxServer) -> int:
    return len([c for c in sandbox.request_log if c[0] == "POST" and c[1].endswith("/finetunes")])


def test_declared_digests_plan_without_weights_and_apply_records_the_url(
    cli: Cli, cf_env: SandboxServer, urls: dict[str, str], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "p", {n: (u, sha256(ADAPTER / n)) for n, u in urls.items()})
    planned = cli("plan", "-c", config, "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    header = 8 + int.from_bytes((ADAPTER / WEIGHTS).read_bytes()[:8], "little")
    sent = sum(s.bytes for s in cf_env.hub_log if s.path.endswith(WEIGHTS) and s.method == "GET")
    assert sent == header  # the 8-byte length and the header: no weight byte
    assert f"from {urls[WEIGHTS]}" in planned.stdout

    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    lock = json.loads(config.with_suffix(".lock").read_text())["finetunes"]["support-bot"]
    for name in (CONFIG, WEIGHTS):
        assert lock["assets"][name] == {
            "sha256": "sha256:" + sha256(ADAPTER / name),
            "size": (ADAPTER / name).stat().st_size,
            "source": urls[name],
        }
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_a_wrong_sha256_is_refused_and_nothing_is_created(
    cli: Cli, cf_env: SandboxServer, urls: dict[str, str], tmp_path: Path
) -> None:
    wrong = "dead" * 16
    config = write_config(
        tmp_path / "p",
        {CONFIG: (urls[CONFIG], sha256(ADAPTER / CONFIG)), WEIGHTS: (urls[WEIGHTS], wrong)},
    )
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 1, applied.output + applied.stderr
    assert "fetch adapter_model.safetensors" in applied.stdout
    assert f"not the declared {wrong[:12]}" in applied.stdout
    assert "nothing was created" in applied.stdout
    assert creates(cf_env) == 0
    lock = config.with_suffix(".lock")
    assert not lock.exists() or "support-bot" not in json.loads(lock.read_text())["finetunes"]
    assert not list((config.parent / ".reconciler" / "downloads").glob(wrong))

    # a config file is read whole by plan (a few kB): a wrong digest is refused before apply
    config = write_config(
        tmp_path / "q",
        {CONFIG: (urls[CONFIG], wrong), WEIGHTS: (urls[WEIGHTS], sha256(ADAPTER / WEIGHTS))},
    )
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1
    # both digests whole, to compare with what sha256sum prints (issue 21, friction 13)
    assert f"not the declared {wrong}:" in planned.stderr
    assert f"has sha256 {sha256(ADAPTER / CONFIG).removeprefix('sha256:')}," in planned.stderr
    assert creates(cf_env) == 0


def test_plain_http_is_refused_except_to_loopback(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
    sha = "a" * 64
    config = write_config(
        tmp_path / "p",
        {CONFIG: ("http://example.com/a.json", sha), WEIGHTS: ("http://127.0.0.1:9/w", sha)},
    )
    result = cli("validate", "-c", config)
    assert result.exit_code == 1
    assert "adapter.files.adapter_config.json.url: plain http:// is refused" in result.stderr
    assert "adapter_model.safetensors.url" not in result.stderr  # loopback is allowed
