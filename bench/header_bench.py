"""Safetensors header checks: what the pre-flight reads of each adapter on a cold plan.

Realistic headers, as PEFT writes them for a llama-shaped model (BF16, seven target modules
per layer, one lora_A and one lora_B each): about 450 tensors for a rank-16 adapter over 32
layers (90 MB), about 900 over 64 layers, and 4,096 as the large case. Each is checked the
way a plan does it (read_header + summarize, from a real file) and compared with the least
any reader must do: `json.loads` of the same header bytes.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from bench.common import Figure, say
from reconciler.adapters.preflight import summarize
from reconciler.adapters.safetensors import read_header

MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
HIDDEN, INTER = 4096, 14336


def header_bytes(tensors: int, rank: int = 16) -> tuple[bytes, int]:
    """A header of about `tensors` LoRA tensors, and the data size it describes."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    layer = 0
    while len(header) - 1 < tensors:
        for module in MODULES:
            out = INTER if module in ("gate_proj", "up_proj") else HIDDEN
            inn = INTER if module == "down_proj" else HIDDEN
            block = "mlp" if module in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            for name, shape in (("lora_A.weight", [rank, inn]), ("lora_B.weight", [out, rank])):
                size = shape[0] * shape[1] * 2
                key = f"base_model.model.model.layers.{layer}.{block}.{module}.{name}"
                header[key] = {
                    "dtype": "BF16",
                    "shape": shape,
                    "data_offsets": [offset, offset + size],
                }
                offset += size
        layer += 1
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return raw, offset


def write(path: Path, raw: bytes, data: int) -> None:
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + data)  # sparse: the data is never read


def best(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def run(tmp: Path, quick: bool) -> list[Figure]:
    runs = 10 if quick else 40
    figures = []
    for count in (450, 900, 4096):
        raw, data = header_bytes(count)
        path = tmp / f"adapter-{count}.safetensors"
        write(path, raw, data)
        tensors = len(read_header(path).tensors)
        ours = baseline = float("inf")
        for _ in range(3):  # alternate, so background load hits both alike
            ours = min(ours, best(lambda p=path: summarize(read_header(p)), runs))
            baseline = min(baseline, best(lambda r=raw: json.loads(r), runs))
        ratio = ours / baseline
        say(f"  {tensors} tensors, {len(raw):,}-byte header: {ours * 1000:.2f} ms")
        figures.append(
            Figure(
                bench="header",
                what=f"check a {tensors}-tensor header ({len(raw) // 1024} KiB)",
                value=ours * 1000,
                unit="ms",
                baseline=baseline * 1000,
                baseline_what="json.loads of it",
                ratio=ratio,
                goal="ratio <= 4.0",
                passed=ratio <= 4.0,
            )
        )
    return figures
