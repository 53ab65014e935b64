"""Reading a LoRA folder the way a vLLM worker does when it loads an adapter.

The steps, in vLLM's order (vllm/lora/worker_manager.py, WorkerLoRAManager._load_adapter):

1. The path (vllm/lora/utils.py, get_adapter_absolute_path): an absolute path is taken as it
   is, `~` is expanded, a relative path that exists is made absolute; anything else would be a
   Hugging Face repo id that vLLM tries to download. The sandbox is offline: like vLLM when that
   download fails, it keeps the path as given, which then is not found.
2. adapter_config.json is opened and parsed (vllm/lora/peft_helper.py, PEFTHelper.from_local_dir
   and from_dict): a missing file is FileNotFoundError, which vLLM turns into "No adapter found"
   (404); unreadable or bad JSON, or a config without `r`, `lora_alpha` and `target_modules`,
   fails the load (400).
3. PEFTHelper.validate_legal: DoRA, modules_to_save and an `r` above --max-lora-rank fail it.
4. The weights (vllm/lora/lora_model.py, LoRAModel.from_local_checkpoint):
   adapter_model.safetensors, else adapter_model.bin or .pt; none of them fails the load. The
   safetensors header is read and every tensor must name a LoRA weight of a module the base
   model has (check_unexpected_modules). The sandbox takes every base to be a Llama-style
   decoder (EXPECTED_MODULES). The .bin and .pt pickles are not looked into.

The sandbox then keeps the SHA-256 of adapter_config.json and of the weights file: what the
replica "loaded", which its answers are fingerprinted with. Whatever failed is raised as
AdapterNotFound or AdapterRefused, carrying vLLM's own message.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

CONFIG = "adapter_config.json"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "adapter_model.pt")
# What vLLM's Llama model lists as LoRA-able (its linear layers, with the packed qkv_proj and
# gate_up_proj spelled out as the names PEFT writes, plus its embedding modules).
EXPECTED_MODULES = frozenset(
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    | {"embed_tokens", "lm_head"}
)
REQUIRED_FIELDS = ("r", "lora_alpha", "target_modules")  # PEFTHelper's fields without default
MAX_HEADER = 100_000_000  # the safetensors library refuses larger headers
CHUNK = 1 << 20


class AdapterNotFound(Exception):
    """vLLM's LoRAAdapterNotFoundError: no adapter at that path (404)."""

    def __init__(self, lora_name: str, lora_path: str) -> None:
        super().__init__(f"Loading lora {lora_name} failed: No adapter found for {lora_path}")


class AdapterRefused(Exception):
    """Any other load failure (400); str() is the worker's message."""


@dataclass(frozen=True)
class AdapterFiles:
    """What a successful read found: the rank and the digests of the two files read."""

    path: str  # as resolved (absolute, or as given)
    rank: float
    config_sha256: str
    weights_sha256: str

    @property
    def digests(self) -> tuple[str, str]:
        return (self.config_sha256, self.weights_sha256)


def resolve(lora_path: str) -> str:
    if os.path.isabs(lora_path):
        return lora_path
    if lora_path.startswith("~"):
        return os.path.expanduser(lora_path)
    if os.path.exists(lora_path):
        return os.path.abspath(lora_path)
    return lora_path  # a repo id vLLM would download; the sandbox has no Hub to ask


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_config(lora_name: str, lora_path: str, folder: str) -> tuple[dict[str, Any], bytes]:
    try:
        with open(os.path.join(folder, CONFIG), "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise AdapterNotFound(lora_name, lora_path) from None
    except OSError as exc:
        raise AdapterRefused(str(exc)) from None
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterRefused(str(exc)) from None
    if not isinstance(config, dict):
        # vLLM sets config["vllm_max_position_embeddings"] on whatever json.load returned.
        kind = type(config).__name__
        if isinstance(config, list):
            raise AdapterRefused("list indices must be integers or slices, not str")
        raise AdapterRefused(f"'{kind}' object does not support item assignment")
    return config, raw


def _checked_rank(config: dict[str, Any], max_lora_rank: int) -> float:
    missing = sorted(f for f in REQUIRED_FIELDS if f not in config)
    if missing:
        shown = "{" + ", ".join(repr(f) for f in missing) + "}"
        raise AdapterRefused(f"Missing required configuration fields: {shown}")
    rank, alpha = config["r"], config["lora_alpha"]
    if not (_is_number(rank) and _is_number(alpha)):
        # PEFTHelper.__post_init__ divides lora_alpha by r before anything looks at r.
        raise AdapterRefused(
            f"unsupported operand type(s) for /: '{type(alpha).__name__}' and "
            f"'{type(rank).__name__}'"
        )
    if rank == 0:
        both_int = isinstance(alpha, int) and isinstance(rank, int)
        raise AdapterRefused("division by zero" if both_int else "float division by zero")
    problems = []
    if config.get("modules_to_save"):
        problems.append("vLLM only supports modules_to_save being None.")
    if config.get("use_dora"):
        problems.append("vLLM does not yet support DoRA.")
    if rank > max_lora_rank:
        problems.append(f"LoRA rank {rank} is greater than max_lora_rank {max_lora_rank}.")
    if problems:
        raise AdapterRefused(" ".join(problems))
    return float(rank)


def _is_number(value: object) -> bool:
    # bool is an int to Python, and True / 1 divides: vLLM would take it, and so does the sandbox
    return isinstance(value, (int, float))


def _module_of(name: str) -> str:
    """vLLM's parse_fine_tuned_lora_name: the module a LoRA tensor belongs to."""
    if name.startswith("base_model.model."):
        name = name.replace("base_model.model.", "")
    parts = name.split(".")
    if parts[-1] == "weight" and len(parts) >= 2 and parts[-2] in ("lora_A", "lora_B"):
        return ".".join(parts[:-2])
    if parts[-1] in ("lora_embedding_A", "lora_embedding_B"):
        return ".".join(parts[:-1])
    raise AdapterRefused(f"{name} is unsupported LoRA weight")


def _header(path: str) -> dict[str, Any]:
    """The safetensors header, refused as the safetensors library refuses it."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        if len(head) < 8:
            raise AdapterRefused("Error while deserializing header: HeaderTooSmall")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER or 8 + length > size:
            reason = "HeaderTooLarge" if length > MAX_HEADER else "InvalidHeaderLength"
            raise AdapterRefused(f"Error while deserializing header: {reason}")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise AdapterRefused("Error while deserializing header: InvalidHeaderDeserialization")
    return header


def _check_tensors(folder: str, path: str) -> None:
    unexpected: list[str] = []
    for name in _header(path):
        if name == "__metadata__":
            continue
        if name.endswith((".embed_tokens.base_layer.weight", ".lm_head.base_layer.weight")):
            continue
        if "base_layer" in name:
            continue
        module = _module_of(name)
        if module.rsplit(".", 1)[-1] not in EXPECTED_MODULES:
            unexpected.append(module)
    if unexpected:
        expected = "{" + ", ".join(repr(m) for m in sorted(EXPECTED_MODULES)) + "}"
        raise AdapterRefused(
            f"While loading {folder}, expected target modules in {expected} but received "
            f"{unexpected}. Please verify that the loaded LoRA module is correct"
        )


def _weights(folder: str) -> str:
    for name in WEIGHTS:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            if name == WEIGHTS[0]:
                _check_tensors(folder, path)
            return path
    raise AdapterRefused(f"{folder} doesn't contain tensors")


def read_adapter(lora_name: str, lora_path: str, max_lora_rank: int) -> AdapterFiles:
    """Read and check the adapter at `lora_path` as a vLLM worker loading it would."""
    folder = resolve(lora_path)
    config, raw = _read_config(lora_name, lora_path, folder)
    rank = _checked_rank(config, max_lora_rank)
    weights = _weights(folder)
    try:
        weights_sha256 = _sha256(weights)
    except OSError as exc:
        raise AdapterRefused(str(exc)) from None
    return AdapterFiles(folder, rank, hashlib.sha256(raw).hexdigest(), weights_sha256)
