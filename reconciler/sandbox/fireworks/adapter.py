"""What validateUpload checks in an uploaded LoRA adapter (HF_PEFT_ADDON).

From Fireworks' upload docs (README of the gateway fragments, facts 4 and 5): the upload must
hold `adapter_config.json` and `adapter_model.safetensors` or `adapter_model.bin`; in
`adapter_config.json`, `r` is an integer from 4 to 64 and `target_modules` uses only the
modules below; other fields are ignored. The query flags, as the API describes them:
`skipHfConfigValidation` skips the adapter_config.json checks; `configOnly` skips "tokenizer
and parameter name validation", which here is the safetensors header check (its tensor names
must include LoRA weights). `trustRemoteCode` changes nothing: no code is run.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.sandbox.fireworks.errors import invalid

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
MIN_RANK, MAX_RANK = 4, 64
TARGET_MODULES = frozenset(
    {
        "q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "w1", "down_proj", "w2",
        "gate_proj", "w3", "block_sparse_moe.gate",
    }
)  # fmt: skip
# How the reconciler's own pre-flight (adapters/preflight.py) knows a LoRA tensor, too.
LORA_MARKERS = ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B")
MAX_CONFIG_BYTES = 1 << 20
# safetensors' own parser refuses headers over 100 MB.
MAX_HEADER_BYTES = 100_000_000


def check_rank(value: Any, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_RANK <= value <= MAX_RANK:
        raise invalid(
            f"{label} must be an integer between {MIN_RANK} and {MAX_RANK}, got {value!r}"
        )
    return value


def check_targets(value: Any, label: str) -> list[str]:
    modules = [value] if isinstance(value, str) else value
    if not isinstance(modules, list) or not modules or not all(isinstance(m, str) for m in modules):
        raise invalid(f"{label} must be a non-empty list of module names")
    unknown = sorted(set(modules) - TARGET_MODULES)
    if unknown:
        raise invalid(
            f"{label} has unsupported modules {', '.join(unknown)};"
            f" supported: {', '.join(sorted(TARGET_MODULES))}"
        )
    return modules


def check_upload(
    paths: Mapping[str, Path], peft: Mapping[str, Any], *, skip_config: bool, config_only: bool
) -> list[str]:
    """The warnings of a valid adapter upload (`paths`: file name -> its landed bytes);
    INVALID_ARGUMENT for an invalid one."""
    if CONFIG_FILE not in paths or not any(name in paths for name in WEIGHT_FILES):
        raise invalid(
            f"a LoRA upload must contain {CONFIG_FILE} and {WEIGHT_FILES[0]} or"
            f" {WEIGHT_FILES[1]}; uploaded: {', '.join(sorted(paths)) or 'nothing'}"
        )
    warnings: list[str] = []
    if not skip_config:
        warnings += _check_config(paths[CONFIG_FILE], peft)
    if not config_only and WEIGHT_FILES[0] in paths:
        _check_safetensors(paths[WEIGHT_FILES[0]])
    return warnings


def _check_config(path: Path, peft: Mapping[str, Any]) -> list[str]:
    with path.open("rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    try:
        config = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_CONFIG_BYTES else None
    except (UnicodeDecodeError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise invalid(f"{CONFIG_FILE} is not a JSON object of at most {MAX_CONFIG_BYTES} bytes")
    rank = check_rank(config.get("r"), f"{CONFIG_FILE}: r")
    targets = check_targets(config.get("target_modules"), f"{CONFIG_FILE}: target_modules")
    # Sandbox choice: a disagreement with the model's peftDetails is a warning, not an error
    # (the weights are what serve; the API's answer to this is not documented).
    warnings = []
    if peft.get("r") != rank:
        warnings.append(
            f"{CONFIG_FILE} has r={rank} but the model's peftDetails.r is {peft.get('r')}"
        )
    declared = sorted(set(peft.get("targetModules", [])))
    if declared != sorted(set(targets)):
        warnings.append(
            f"{CONFIG_FILE} targets {', '.join(sorted(set(targets)))} but the model's"
            f" peftDetails.targetModules are {', '.join(declared)}"
        )
    return warnings


def _check_safetensors(path: Path) -> None:
    name = WEIGHT_FILES[0]
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise invalid(f"{name} is not a safetensors file (no header of a valid length)")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict):
        raise invalid(f"{name} is not a safetensors file (its header is not a JSON object)")
    tensors = [key for key in header if key != "__metadata__"]
    if not any(marker in key for key in tensors for marker in LORA_MARKERS):
        raise invalid(
            f"{name} holds no LoRA weights (no tensor named *lora_A* or *lora_B* among"
            f" {len(tensors)}); pass configOnly=true to skip parameter name validation"
        )
