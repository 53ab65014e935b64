#!/usr/bin/env python3
"""Write a tiny but valid LoRA adapter folder: adapter_config.json + adapter_model.safetensors.

Standard library only, so you can read it to see the format Cloudflare expects:
  - adapter_config.json: PEFT's config, with model_type (mistral, gemma or llama) and rank r.
  - adapter_model.safetensors: an 8-byte little-endian header length, a JSON header naming
    each tensor's dtype, shape and byte offsets, then the raw tensor bytes.

    python examples/make_adapter.py OUT_DIR [--model-type mistral] [--rank 4] [--hidden 32]
"""

from __future__ import annotations

import argparse
import json
import random
import struct
from pathlib import Path

BASE_MODELS = {
    "mistral": "mistralai/Mistral-7B-Instruct-v0.2",
    "gemma": "google/gemma-2b-it",
    "llama": "meta-llama/Llama-2-7b-chat-hf",
}


def safetensors_bytes(tensors: dict[str, tuple[list[int], list[float]]]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    data = bytearray()
    for name, (shape, values) in sorted(tensors.items()):
        start = len(data)
        data += struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [start, len(data)]}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the header is padded to 8 bytes with spaces
    return struct.pack("<Q", len(raw)) + raw + bytes(data)


def make_adapter(
    out: Path, model_type: str, rank: int, hidden: int, layers: int, seed: str
) -> None:
    rng = random.Random(seed)
    modules = ["q_proj", "v_proj"]
    tensors: dict[str, tuple[list[int], list[float]]] = {}
    for layer in range(layers):
        for module in modules:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = (
                [rank, hidden],
                [round(rng.gauss(0, 0.02), 6) for _ in range(rank * hidden)],
            )
            tensors[f"{prefix}.lora_B.weight"] = ([hidden, rank], [0.0] * (hidden * rank))
    config = {
        "base_model_name_or_path": BASE_MODELS.get(model_type, model_type),
        "model_type": model_type,
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": rank * 2,
        "lora_dropout": 0.05,
        "target_modules": modules,
        "bias": "none",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "adapter_model.safetensors").write_bytes(safetensors_bytes(tensors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model-type", default="mistral", choices=sorted(BASE_MODELS))
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--seed", default="reconciler", help="makes the weights reproducible")
    args = parser.parse_args()
    make_adapter(args.out, args.model_type, args.rank, args.hidden, args.layers, args.seed)
    print(f"wrote {args.out}/adapter_config.json and {args.out}/adapter_model.safetensors")


if __name__ == "__main__":
    main()
