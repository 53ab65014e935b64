"""A vLLM fleet apply: one adapter loaded on 8 emulated servers against the same apply on 1,
each load taking LATENCY seconds (the sandbox's vllm_load_latency). The servers are worked in
parallel, so 8 should cost about what 1 does: goal 8/1 <= 1.5.

Both runs are the library calls (workflow.make_plan, workflow.apply) against an in-process
SandboxServer on 127.0.0.1, with VLLM_SERVERS naming its replicas and the store in the bench's
temp folder; the loads are counted in the sandbox's request log.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import Figure, say
from reconciler.sandbox.server import SandboxServer
from reconciler.workflow import session as workflow

LATENCY = 0.5
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def _adapter(folder: Path) -> None:
    import json
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    config = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}
    config |= {"peft_type": "LORA", "base_model_name_or_path": MODEL}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    tensors, offset = {}, 0
    for module in ("q_proj", "v_proj"):
        for part, shape in (("lora_A", [8, 64]), ("lora_B", [64, 8])):
            size = shape[0] * shape[1] * 2
            name = f"base_model.model.model.layers.0.self_attn.{module}.{part}.weight"
            tensors[name] = {
                "dtype": "BF16",
                "shape": shape,
                "data_offsets": [offset, offset + size],
            }
            offset += size
    header = json.dumps(tensors).encode()
    header += b" " * (-len(header) % 8)
    blob = struct.pack("<Q", len(header)) + header + bytes(offset)
    (folder / "adapter_model.safetensors").write_bytes(blob)


def _apply(tmp: Path, replicas: int) -> tuple[float, int]:
    project = tmp / f"fleet-{replicas}"
    _adapter(project / "adapters" / "support")
    (project / "store").mkdir(parents=True)
    config = project / "finetunes.yaml"
    config.write_text(
        "version: 1\nproviders:\n  vllm:\n    store: store\nfinetunes:\n"
        f"  - name: support\n    provider: vllm\n    model: {MODEL}\n"
        "    adapter: adapters/support/\n"
    )
    options = {"vllm_replicas": replicas, "vllm_load_latency": str(LATENCY)}
    with SandboxServer(tmp / f"sandbox-{replicas}", options=options) as server:
        servers = ",".join(f"{server.url}/vllm/{i}" for i in range(replicas))
        env = {"VLLM_SERVERS": servers}
        with workflow.open_providers(config, env, None) as providers:
            planned = workflow.make_plan(config, env, providers)
            before = len(server.request_log)
            start = time.perf_counter()
            result = workflow.apply(planned, providers)
            elapsed = time.perf_counter() - start
        assert not result.failed, result.failed[:3]
        loads = [p for _, p in server.request_log[before:] if p.endswith("/load_lora_adapter")]
    return elapsed, len(loads)


def run(tmp: Path, quick: bool) -> list[Figure]:
    one, loads_one = _apply(tmp, 1)
    eight, loads_eight = _apply(tmp, 8)
    assert (loads_one, loads_eight) == (1, 8), (loads_one, loads_eight)
    ratio = eight / one
    say(f"  1 server: {one:.2f}s; 8 servers: {eight:.2f}s ({LATENCY:.1f}s per load)")
    return [
        Figure(
            "fleet",
            f"apply to 8 vLLM servers, {LATENCY:.1f}s per load (s)",
            eight,
            "s",
            one,
            "the same apply to 1 server",
            ratio,
            "<= 1.50",
            ratio <= 1.50,
        )
    ]
