"""wrangler, Cloudflare's own CLI, against the sandbox: `ai finetune create` and `list`.

Needs wrangler: set RECONCILER_WRANGLER to its executable or put it on PATH, e.g.
`mkdir -p .node && cd .node && npm install --no-audit --no-fund wrangler` and then
RECONCILER_WRANGLER=.node/node_modules/.bin/wrangler. Skipped when absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer

ACCOUNT = DEFAULT_ACCOUNT_ID
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
FINETUNES_PATH = f"/client/v4/accounts/{ACCOUNT}/ai/finetunes"
WRANGLER_TIMEOUT_S = 120
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def find_wrangler() -> str:
    explicit = os.environ.get("RECONCILER_WRANGLER")
    if explicit:
        if not Path(explicit).is_file():
            pytest.fail(f"RECONCILER_WRANGLER={explicit} is not a file")
        return explicit
    found = shutil.which("wrangler")
    if found is None:
        pytest.skip("wrangler not found: set RECONCILER_WRANGLER or put wrangler on PATH")
    return found


def write_safetensors(path: Path) -> bytes:
    """A minimal valid safetensors file: one 2x4 F32 LoRA tensor."""
    header = {
        "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": {
            "dtype": "F32",
            "shape": [2, 4],
            "data_offsets": [0, 32],
        }
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format pads the header to 8 bytes
    data = struct.pack("<8f", *(0.125 * i for i in range(8)))
    content = struct.pack("<Q", len(encoded)) + encoded + data
    path.write_bytes(content)
    return content


def write_adapter(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    config = {
        "model_type": "mistral",
        "r": 8,
        "lora_alpha": 16,
        "target_modules": ["q_proj", "v_proj"],
        "peft_type": "LORA",
        "base_model_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2",
    }
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    weights = write_safetensors(folder / "adapter_model.safetensors")
    (folder / "README.md").write_text("not an asset: wrangler must skip it\n")
    return {
        "adapter_config.json": (folder / "adapter_config.json").read_bytes(),
        "adapter_model.safetensors": weights,
    }


def test_safetensors_helper_writes_a_parseable_file(tmp_path: Path) -> None:
    content = write_safetensors(tmp_path / "a.safetensors")
    (length,) = struct.unpack("<Q", content[:8])
    assert length % 8 == 0
    header = json.loads(content[8 : 8 + length])
    start, end = header["base_model.model.layers.0.self_attn.q_proj.lora_A.weight"]["data_offsets"]
    assert len(content[8 + length :]) == end - start == 2 * 4 * 4


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "data") as server:
        yield server


class Wrangler:
    def __init__(self, executable: str, sb: SandboxServer, home: Path) -> None:
        self.executable = executable
        home.mkdir()
        # A clean environment: nothing of the developer's own Cloudflare login leaks in, and
        # wrangler neither reports telemetry nor checks npm for updates.
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "WRANGLER_LOG_PATH": str(home / "logs"),
            "CLOUDFLARE_API_BASE_URL": sb.cloudflare_base_url,
            "CLOUDFLARE_API_TOKEN": DEFAULT_TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "WRANGLER_SEND_METRICS": "false",
            "WRANGLER_SEND_ERROR_REPORTS": "false",
            "WRANGLER_HIDE_BANNER": "true",  # the banner is what runs the npm update check
            # ...and the "possible bug" note on unexpected errors runs it too: point it at a
            # closed loopback port so it fails at once instead of reaching registry.npmjs.org.
            "npm_config_registry": "http://127.0.0.1:9/",
            "CI": "true",  # never prompt
            "NO_COLOR": "1",
        }
        self.cwd = home

    def __call__(self, *args: str, token: str | None = None) -> tuple[int, str]:
        env = dict(self.env)
        if token is not None:
            env["CLOUDFLARE_API_TOKEN"] = token
        done = subprocess.run(
            [self.executable, *args],
            env=env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=WRANGLER_TIMEOUT_S,
        )
        return done.returncode, ANSI.sub("", done.stdout + done.stderr)


@pytest.fixture
def wrangler(sb: SandboxServer, tmp_path: Path) -> Wrangler:
    return Wrangler(find_wrangler(), sb, tmp_path / "home")


def test_create_uploads_both_assets_and_list_shows_the_finetune(
    wrangler: Wrangler, sb: SandboxServer, tmp_path: Path
) -> None:
    files = write_adapter(tmp_path / "adapter")
    code, out = wrangler(
        "ai", "finetune", "create", MODEL, "wrangler-bot", str(tmp_path / "adapter")
    )
    assert code == 0, out
    assert 'Assets uploaded, finetune "wrangler-bot" is ready to use' in out
    [finetune] = sb.store.list_finetunes(ACCOUNT)
    assert (finetune.name, finetune.model, finetune.description) == ("wrangler-bot", MODEL, "")
    assets = {a.file_name: a.sha256 for a in sb.store.list_assets(finetune.id)}
    assert assets == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    uploads = f"{FINETUNES_PATH}/{finetune.id}/finetune-assets"
    assert sb.request_log == [("POST", FINETUNES_PATH), ("POST", uploads), ("POST", uploads)]

    code, out = wrangler("ai", "finetune", "list", "--json")
    assert code == 0, out
    listed = json.loads(out[out.index("[") :])
    assert [(f["id"], f["name"]) for f in listed] == [(finetune.id, "wrangler-bot")]

    code, out = wrangler("ai", "finetune", "list")
    assert code == 0, out
    assert finetune.id in out and "wrangler-bot" in out


def test_duplicate_name_is_reported_with_the_code(
    wrangler: Wrangler, sb: SandboxServer, tmp_path: Path
) -> None:
    write_adapter(tmp_path / "adapter")
    folder = str(tmp_path / "adapter")
    assert wrangler("ai", "finetune", "create", MODEL, "twice", folder)[0] == 0
    _, out = wrangler("ai", "finetune", "create", MODEL, "twice", folder)
    # wrangler catches this one itself (exit 0) and prints `<message> [code: N]`.
    assert "already exists" in out and "[code: 3010]" in out
    assert len(sb.store.list_finetunes(ACCOUNT)) == 1


def test_bad_token_fails_with_10000_and_wrangler_verifies_the_token(
    wrangler: Wrangler, sb: SandboxServer
) -> None:
    code, out = wrangler("ai", "finetune", "list", token="not-the-sandbox-token")
    assert code != 0
    assert "Authentication error [code: 10000]" in out
    assert "not-the-sandbox-token" not in out
    assert ("GET", "/client/v4/user/tokens/verify") in sb.request_log


def test_models_lists_the_whole_catalogue_in_pages_of_50(
    wrangler: Wrangler, sb: SandboxServer
) -> None:
    code, out = wrangler("ai", "models", "--json")
    assert code == 0, out
    models = json.loads(out[out.index("[") :])
    names = [m["name"] for m in models]
    assert len(names) == len(set(names)) > 20
    assert "@cf/mistralai/mistral-small-3.1-24b-instruct" in names
    assert all(m["task"]["name"] for m in models)
    # One page of 50 holds it all: wrangler stops at that short page.
    assert sb.request_log == [("GET", f"/client/v4/accounts/{ACCOUNT}/ai/models/search")]

    code, out = wrangler("ai", "models")
    assert code == 0, out
    assert "@cf/qwen/qwq-32b" in out and "Text Generation" in out


def test_create_on_a_model_without_lora_is_refused_with_the_code(
    wrangler: Wrangler, sb: SandboxServer, tmp_path: Path
) -> None:
    write_adapter(tmp_path / "adapter")
    model = "@cf/meta/llama-3.3-70b-instruct-fp8-fast"
    _, out = wrangler("ai", "finetune", "create", model, "no-lora", str(tmp_path / "adapter"))
    assert f"The model {model} does not support LoRA [code: 5005]" in out
    assert sb.store.list_finetunes(ACCOUNT) == []
