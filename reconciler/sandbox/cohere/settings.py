"""A fine-tuned model's `settings`: what Cohere accepts, and the normal form the sandbox keeps.

Ranges and defaults are the published ones (Cohere's fine-tuning docs; see
/work/shared/api-notes.md). The normal form fills in the defaults, so a client that sends
them explicitly and one that leaves them out ask for the same training, and a PATCH that
echoes the settings back, in either form, is recognised as "unchanged".
"""

from __future__ import annotations

import math
from typing import Any

from reconciler.sandbox.cohere.datasets import CHAT, MULTI_LABEL, RERANK, SINGLE_LABEL

# Deprecated or meaningless base types (UNSPECIFIED, GENERATIVE) are refused with a reason.
BASE_TYPES = {
    "BASE_TYPE_CHAT": (CHAT,),
    "BASE_TYPE_RERANK": (RERANK,),
    "BASE_TYPE_CLASSIFICATION": (SINGLE_LABEL, MULTI_LABEL),
}
STRATEGIES = ("STRATEGY_UNSPECIFIED", "STRATEGY_VANILLA", "STRATEGY_TFEW")
LORA_TARGET_MODULES = (
    "LORA_TARGET_MODULES_UNSPECIFIED",
    "LORA_TARGET_MODULES_QV",
    "LORA_TARGET_MODULES_QKVO",
    "LORA_TARGET_MODULES_QKVO_FFN",
)

# name: (type, minimum, maximum, default); None where Cohere publishes no range or default.
HYPERPARAMETERS: dict[str, tuple[type, float | None, float | None, float | None]] = {
    "train_epochs": (int, 1, 10, 1),
    "learning_rate": (float, 0.00005, 0.1, 0.01),
    "train_batch_size": (int, 2, 16, 16),
    "early_stopping_threshold": (float, 0.001, 0.1, 0.001),
    "early_stopping_patience": (int, 0, 10, 10),
    "lora_alpha": (int, 1, None, None),
    "lora_rank": (int, 1, None, None),
}

_SETTINGS_KEYS = ("base_model", "dataset_id", "hyperparameters", "multi_label", "wandb")
_BASE_MODEL_KEYS = ("base_type", "name", "version", "strategy")
_WANDB_KEYS = ("project", "api_key", "entity")


class SettingsError(ValueError):
    pass


def _object(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(f"{where} must be an object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise SettingsError(f"unknown field {where}.{unknown[0]}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{where} must be a non-empty string")
    return value


def _hyperparameter(name: str, value: Any) -> int | float:
    kind, low, high, _ = HYPERPARAMETERS[name]
    where = f"settings.hyperparameters.{name}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{where} must be a number")
    if kind is int and not float(value).is_integer():
        raise SettingsError(f"{where} must be an integer, got {value}")
    number: int | float = int(value) if kind is int else float(value)
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise SettingsError(f"{where} must be {bounds}, got {number:g}")
    return number


def normalize(raw: Any) -> dict[str, Any]:
    """The settings in normal form, or SettingsError naming the first problem."""
    settings = _object(raw, "settings", _SETTINGS_KEYS)
    if settings.get("base_model") is None:
        raise SettingsError("settings.base_model is required")
    base = _object(settings["base_model"], "settings.base_model", _BASE_MODEL_KEYS)
    base_type = base.get("base_type")
    if base_type in (None, "", "BASE_TYPE_UNSPECIFIED"):
        raise SettingsError("settings.base_model.base_type is required")
    if base_type == "BASE_TYPE_GENERATIVE":
        raise SettingsError("BASE_TYPE_GENERATIVE is deprecated and can no longer be fine-tuned")
    if base_type not in BASE_TYPES:
        raise SettingsError(
            f"invalid settings.base_model.base_type {base_type!r}:"
            f" use one of {', '.join(BASE_TYPES)}"
        )
    base_model: dict[str, Any] = {"base_type": base_type}
    if base.get("name") is not None:
        base_model["name"] = _string(base["name"], "settings.base_model.name")
    strategy = base.get("strategy")
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise SettingsError(f"invalid settings.base_model.strategy {strategy!r}")
        base_model["strategy"] = strategy
    # `version` and `multi_label` are read-only: accepted (a client may echo them back) and
    # ignored.
    normal: dict[str, Any] = {
        "base_model": base_model,
        "dataset_id": _string(settings.get("dataset_id"), "settings.dataset_id"),
        "hyperparameters": _hyperparameters(settings.get("hyperparameters")),
    }
    if settings.get("wandb") is not None:
        wandb = _object(settings["wandb"], "settings.wandb", _WANDB_KEYS)
        normal["wandb"] = {
            "project": _string(wandb.get("project"), "settings.wandb.project"),
            "api_key": _string(wandb.get("api_key"), "settings.wandb.api_key"),
        }
        if wandb.get("entity") is not None:
            normal["wandb"]["entity"] = _string(wandb["entity"], "settings.wandb.entity")
    return normal


def _hyperparameters(raw: Any) -> dict[str, Any]:
    given = (
        {}
        if raw is None
        else _object(raw, "settings.hyperparameters", (*HYPERPARAMETERS, "lora_target_modules"))
    )
    normal: dict[str, Any] = {}
    for name, (_, _, _, default) in HYPERPARAMETERS.items():
        if given.get(name) is not None:
            normal[name] = _hyperparameter(name, given[name])
        elif default is not None:
            normal[name] = default
    modules = given.get("lora_target_modules")
    if modules is not None:
        if modules not in LORA_TARGET_MODULES:
            raise SettingsError(
                f"invalid settings.hyperparameters.lora_target_modules {modules!r}:"
                f" use one of {', '.join(LORA_TARGET_MODULES)}"
            )
        normal["lora_target_modules"] = modules
    return normal
