"""The fleet's settings, read once from the mount's options (MountContext.options).

Each setting stands for a `vllm serve` flag that every replica of the fleet was started with:

    vllm_replicas      how many servers (default 2), served at /vllm/0, /vllm/1, ...
    vllm_api_key       --api-key: when set, every /v1 route needs `Authorization: Bearer <key>`
    vllm_model         the base model, as `vllm serve <model>` names it
    vllm_max_lora_rank --max-lora-rank (default 16, one of vLLM's choices)
    vllm_max_loras     --max-loras, and so --max-cpu-loras (default 1, as vLLM's)
    vllm_max_model_len the base model's context length, shown by /v1/models
    vllm_load_latency  seconds a load takes: one number for every replica, or one per replica
                       (a sequence, or "0.5,2" from a command line); real seconds, not scaled
                       by the clock's speed

A value of None means "not given": the default applies (a CLI that passes every flag through
passes None for the ones left unset).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_REPLICAS = 2
DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
DEFAULT_MAX_LORA_RANK = 16  # vLLM's --max-lora-rank default
DEFAULT_MAX_LORAS = 1  # vLLM's --max-loras default; --max-cpu-loras defaults to it
# Llama 3.1's max_position_embeddings: what vLLM reports for the default model when
# --max-model-len is not given.
DEFAULT_MAX_MODEL_LEN = 131072
# vLLM's argparse choices for --max-lora-rank (vllm/config/lora.py, MaxLoRARanks).
MAX_LORA_RANK_CHOICES = (1, 8, 16, 32, 64, 128, 256, 320, 512)
MAX_REPLICAS = 64  # a sandbox limit: each replica is a few dictionaries, but not a thousand


@dataclass(frozen=True)
class FleetOptions:
    replicas: int = DEFAULT_REPLICAS
    api_key: str | None = None
    model: str = DEFAULT_MODEL
    max_lora_rank: int = DEFAULT_MAX_LORA_RANK
    max_loras: int = DEFAULT_MAX_LORAS
    max_model_len: int = DEFAULT_MAX_MODEL_LEN
    load_latency: tuple[float, ...] = (0.0,)

    def latency(self, replica: int) -> float:
        """The load latency of one replica; a short list repeats its last value."""
        return self.load_latency[min(replica, len(self.load_latency) - 1)]


def _int(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low} and {high}, got {value}")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, str):
        value = float(value.strip()) if value.strip() else math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"vllm_load_latency must be seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"vllm_load_latency must be zero or more seconds, got {value!r}")
    return float(value)


def _latencies(value: object) -> tuple[float, ...]:
    if value is None:
        return (0.0,)
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value:
            raise ValueError("vllm_load_latency needs at least one value")
        return tuple(_seconds(item) for item in value)
    return (_seconds(value),)


def _text(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string")
    return value


def read_options(options: Mapping[str, Any]) -> FleetOptions:
    """The fleet's settings; ValueError names the option at fault (never its value for the key)."""
    rank = _int(options, "vllm_max_lora_rank", DEFAULT_MAX_LORA_RANK, 1, 512)
    if rank not in MAX_LORA_RANK_CHOICES:
        # vLLM's argument parser refuses other values before the server starts.
        choices = ", ".join(str(c) for c in MAX_LORA_RANK_CHOICES)
        raise ValueError(f"vllm_max_lora_rank must be one of {choices}, got {rank}")
    api_key = options.get("vllm_api_key")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise ValueError("vllm_api_key must be a non-empty string")  # said without the key
    return FleetOptions(
        replicas=_int(options, "vllm_replicas", DEFAULT_REPLICAS, 1, MAX_REPLICAS),
        api_key=api_key,
        model=_text(options, "vllm_model") or DEFAULT_MODEL,
        max_lora_rank=rank,
        max_loras=_int(options, "vllm_max_loras", DEFAULT_MAX_LORAS, 1, 1024),
        max_model_len=_int(options, "vllm_max_model_len", DEFAULT_MAX_MODEL_LEN, 1, 1 << 24),
        load_latency=_latencies(options.get("vllm_load_latency")),
    )
