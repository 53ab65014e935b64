"""Benchmark inputs: adapter folders of any size (real random bytes, or sparse), and configs."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
WRITE_CHUNK = 16 << 20


def _header(payload: int) -> bytes:
    """A safetensors header for one F32 tensor of `payload` bytes, padded to 8 bytes."""
    header = {
        "__metadata__": {"format": "pt"},
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {
            "dtype": "F32",
            "shape": [payload // 4],
            "data_offsets": [0, payload],
        },
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)


def write_safetensors(path: Path, size: int, *, sparse: bool) -> None:
    """A valid safetensors file of exactly `size` bytes (size a multiple of 8).

    sparse: the tensor bytes are a hole (truncate), so 30 GB of them cost no disk; otherwise
    they are random, written in chunks so memory stays flat.
    """
    assert size % 8 == 0
    payload = size - 8 - 64
    for _ in range(3):  # the header's length depends on the numbers in it
        head = _header(payload)
        payload = size - 8 - len(head)
    head = _header(payload)
    assert 8 + len(head) + payload == size and payload % 4 == 0
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        if sparse:
            f.truncate(size)
            return
        left = payload
        while left:
            n = min(left, WRITE_CHUNK)
            f.write(os.urandom(n))
            left -= n


def write_adapter(folder: Path, size: int, *, sparse: bool, rank: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "base_model_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2",
        "model_type": "mistral",
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": rank * 2,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
        "seed": folder.name,  # distinct content per adapter
    }
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_safetensors(folder / "adapter_model.safetensors", size, sparse=sparse)


@dataclass(frozen=True)
class Entry:
    name: str
    account: str
    adapter: str  # relative to the config


def write_config(path: Path, entries: list[Entry]) -> None:
    lines = ["version: 1", "finetunes:"]
    for e in entries:
        lines += [
            f"  - name: {e.name}",
            "    provider: cloudflare",
            f'    model: "{MODEL}"',
            f"    description: benchmark adapter {e.name}",
            f'    account_id: "{e.account}"',
            f"    adapter: {e.adapter}",
        ]
    path.write_text("\n".join(lines) + "\n")


def account(i: int) -> str:
    return f"{i + 1:032x}"
