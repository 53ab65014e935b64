"""The Fireworks mount on a real werkzeug server on 127.0.0.1, and adapters to upload to it."""

from __future__ import annotations

import contextlib
import json
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import ManualClock
from reconciler.sandbox.common.mount import MountContext
from reconciler.sandbox.fireworks.mount import FireworksMount, mount
from reconciler.sandbox.fireworks.service import DEFAULT_ACCOUNT

TOKEN = "fireworks-sandbox-token"
ACCOUNT = DEFAULT_ACCOUNT
LLAMA = "accounts/fireworks/models/llama-v3p1-8b-instruct"
QWEN = "accounts/fireworks/models/qwen2p5-7b-instruct"
GLM = "accounts/fireworks/models/glm-5p3-flash"  # serverless LoRA
DEEPSEEK = "accounts/fireworks/models/deepseek-v3p1"  # serverless, no LoRA
OCTET = "application/octet-stream"


@dataclass
class Served:
    url: str  # the base URL a client is given: http://127.0.0.1:PORT/fireworks
    clock: ManualClock
    app: FireworksMount
    data_dir: Path

    def api(self, path: str) -> str:
        return f"{self.url}/v1/accounts/{ACCOUNT}/{path}"

    def sdk(self, token: str = TOKEN, **options: Any) -> Any:
        from fireworks import Fireworks

        # max_retries=0: a test sees each answer, not the SDK's retries of 429 and 5xx
        return Fireworks(
            api_key=token, account_id=ACCOUNT, base_url=self.url, max_retries=0, **options
        )


@contextlib.contextmanager
def serve(
    data_dir: Path, clock: ManualClock | None = None, options: Mapping[str, Any] | None = None
) -> Iterator[Served]:
    from werkzeug.serving import make_server

    clock = clock or ManualClock()
    app = mount(MountContext(data_dir, Tokens([TOKEN]), clock, dict(options or {})))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll: shutdown() waits for it, once per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_port}/fireworks", clock, app, data_dir)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def safetensors(names: tuple[str, ...] = ("q_proj.lora_A.weight", "q_proj.lora_B.weight")) -> bytes:
    """A small valid safetensors file holding zero tensors of the given names."""
    header: dict[str, Any] = {}
    offset = 0
    for name in names:
        header[f"base_model.model.layers.0.self_attn.{name}"] = {
            "dtype": "F32",
            "shape": [4, 4],
            "data_offsets": [offset, offset + 64],
        }
        offset += 64
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def adapter_files(r: int = 16, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> dict[str, bytes]:
    config = {"r": r, "lora_alpha": 32, "target_modules": list(targets), "peft_type": "LORA"}
    return {
        "adapter_config.json": json.dumps(config).encode(),
        "adapter_model.safetensors": safetensors(),
    }


def lora_body(model_id: str, base: str = LLAMA, r: int = 16, **model: Any) -> dict[str, Any]:
    peft = {"baseModel": base, "r": r, "targetModules": ["q_proj", "v_proj"]}
    return {"modelId": model_id, "model": {"kind": "HF_PEFT_ADDON", "peftDetails": peft, **model}}


def put(url: str, data: bytes, **headers: str) -> httpx.Response:
    """A PUT as Fireworks' upload example sends it: no credentials, the two signed headers."""
    sent = {"Content-Type": OCTET, "X-Goog-Content-Length-Range": f"{len(data)},{len(data)}"}
    sent.update(headers)
    return httpx.put(url, content=data, headers=sent)


def upload(fw: Any, model_id: str, files: Mapping[str, bytes], *, validate: bool = True) -> None:
    """getUploadEndpoint, a PUT per file, then validateUpload: the documented flow."""
    sizes = {name: str(len(data)) for name, data in files.items()}
    urls = fw.models.get_upload_endpoint(model_id, filename_to_size=sizes).filename_to_signed_urls
    for name, data in files.items():
        put(urls[name], data).raise_for_status()
    if validate:
        fw.models.validate_upload(model_id)


def ready_lora(fw: Any, model_id: str, base: str = LLAMA) -> None:
    body = lora_body(model_id, base)
    fw.models.create(model_id=model_id, model=body["model"])
    upload(fw, model_id, adapter_files())
