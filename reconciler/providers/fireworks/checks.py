"""Fireworks' limits (limits.json) and the pure checks against them: the model id a finetune's
name becomes, the description, and the rank and target modules of adapter_config.json.

The model id rule (reconciler's choice): a Fireworks finetune's model id is its name in the
config, unchanged, so that `accounts/<account>/models/<name>` is known before anything is
made and a lost create is found again by its id. A name that Fireworks would not take as an id
is refused with a suggestion, never rewritten behind the user's back. With `versioning:
content` the id is `<name>-<8 hex>` (plan/versions.py), so the name leaves room for 9 more.

Every message names the limit it is about, and where it comes from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from reconciler.adapters.preflight import LimitsError
from reconciler.providers.fireworks.marker import MARKER_CHARS
from reconciler.providers.fireworks.records import ID_RULE, ID_RULE_TEXT, model_ref
from reconciler.providers.spec import shipped_json

MAX_CONFIG_BYTES = 1_000_000  # an adapter_config.json is a few kB
VERSION_SUFFIX = 9  # "-" and 8 hex: plan/versions.py
OVERRIDABLE = ("min_lora_rank", "max_lora_rank", "target_modules", "lora_models")


@cache
def published() -> Mapping[str, Any]:
    """Fireworks' published limits, as shipped beside this module (limits.json; the spec
    reads the same file for the core, without these checks)."""
    return shipped_json(__package__)


@dataclass(frozen=True)
class FireworksLimits:
    min_rank: int
    max_rank: int
    target_modules: tuple[str, ...]
    max_description: int  # of the whole description sent, the digest marker included
    max_model_id: int
    required_files: tuple[str, ...]
    # base models the config declares LoRA-capable (providers.fireworks.limits.lora_models):
    # they win over the catalogue, live or bundled (catalogue.py)
    lora_models: tuple[str, ...] = ()

    @property
    def max_own_description(self) -> int:
        """What is left of the description for the config's own text: the marker line
        (marker.py) takes MARKER_CHARS."""
        return self.max_description - MARKER_CHARS


def limits(overrides: Mapping[str, Any] | None = None) -> FireworksLimits:
    """The published limits with the config's overrides on top (LimitsError naming the key)."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise LimitsError(
            f"unknown Fireworks limit {', '.join(unknown)}; the limits are {', '.join(OVERRIDABLE)}"
        )
    data = {**published(), **overrides}
    low, high = _whole(data, "min_lora_rank"), _whole(data, "max_lora_rank")
    if low > high:
        raise LimitsError(f"min_lora_rank ({low}) is above max_lora_rank ({high})")
    modules = data.get("target_modules")
    if not isinstance(modules, list) or not modules or not all(isinstance(m, str) for m in modules):
        raise LimitsError(f"target_modules must be a non-empty list of strings, not {modules!r}")
    return FireworksLimits(
        min_rank=low,
        max_rank=high,
        target_modules=tuple(modules),
        max_description=_whole(data, "max_description_chars"),
        max_model_id=_whole(data, "max_model_id_chars"),
        required_files=tuple(data["required_files"]),
        lora_models=_bases(data.get("lora_models", [])),
    )


def _bases(value: Any) -> tuple[str, ...]:
    """lora_models: a list of base models' resource names, accounts/<account>/models/<id>."""
    shape = "a list of base models' resource names, accounts/<account>/models/<id>"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LimitsError(f"lora_models must be {shape}, not {value!r}")
    wrong = [v for v in value if model_ref(v) is None]
    if wrong:
        raise LimitsError(
            f"lora_models: {wrong[0]!r} is not a base model's resource name, "
            "accounts/<account>/models/<id>"
        )
    return tuple(dict.fromkeys(value))


def _whole(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise LimitsError(f"{key} must be a whole number of at least 1, not {value!r}")
    return value


def model_id_problem(name: str, versioned: bool, limit: FireworksLimits) -> str | None:
    """Why the name cannot be the model's id at Fireworks, with a name that could; or None."""
    room = limit.max_model_id - (VERSION_SUFFIX if versioned else 0)
    if ID_RULE.fullmatch(name) and len(name) <= room:
        return None
    if ID_RULE.fullmatch(name):
        return (
            f"the name is {len(name)} characters; with versioning: content its model id is "
            f"NAME-<8 hex>, so Fireworks' limit of {limit.max_model_id} characters per model id "
            f"leaves {room} for the name"
        )
    fitted = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    fitted = re.sub(r"^[0-9-]+", "", fitted)[:room].rstrip("-")
    hint = f" (e.g. {fitted})" if fitted and ID_RULE.fullmatch(fitted) else ""
    return (
        f"the name becomes the Fireworks model id, which must be {ID_RULE_TEXT}"
        f"{' (less 9 for versioning: content)' if versioned else ''}; rename it{hint}"
    )


def description_problem(text: str, limit: FireworksLimits) -> str | None:
    """Why the description cannot be sent, or None: Fireworks keeps descriptions under
    1000 characters, and the digest marker's line takes MARKER_CHARS of them."""
    if len(text) > limit.max_own_description:
        return (
            f"the description is {len(text)} characters; Fireworks takes at most "
            f"{limit.max_description} and reconciler adds a {MARKER_CHARS}-character digest "
            f"line, so at most {limit.max_own_description}"
        )
    if any(line.startswith("reconciler:") for line in text.split("\n")):
        return "a line of the description starts with 'reconciler:', kept for the digest line"
    return None


def parse_config(raw: bytes) -> dict[str, Any] | str:
    """adapter_config.json as a JSON object, or why it is not one."""
    if len(raw) > MAX_CONFIG_BYTES:
        return f"is {len(raw):,} bytes; an adapter config is a few kB: is it the right file?"
    try:
        config = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique)
    except UnicodeDecodeError as exc:
        return f"is not UTF-8 text (invalid byte at offset {exc.start})"
    except json.JSONDecodeError as exc:
        return f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        return f"is not acceptable JSON ({str(exc)[:200]})"
    if not isinstance(config, dict):
        return f"must be a JSON object, not {type(config).__name__}"
    return config


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:  # json keeps the last; the server's parser may keep the first
            raise ValueError(f"the key {json.dumps(key)[:80]} appears twice")
        found[key] = value
    return found


def check_rank(config: Mapping[str, Any], limit: FireworksLimits) -> list[str]:
    """The LoRA rank against Fireworks' range (peftDetails.r); one rank for every module."""
    allowed = (
        f"Fireworks takes a LoRA rank from {limit.min_rank} to {limit.max_rank} (peftDetails.r)"
    )
    if "r" not in config:
        return [f'has no "r" (the LoRA rank); {allowed}']
    rank = config["r"]
    if not isinstance(rank, int) or isinstance(rank, bool):
        return [f'"r" is {json.dumps(rank)}, not a whole number; {allowed}']
    problems = []
    if not limit.min_rank <= rank <= limit.max_rank:
        problems.append(f'"r" is {rank}; {allowed}: retrain with r in that range')
    if config.get("rank_pattern"):
        problems.append(
            '"rank_pattern" gives some modules another rank; Fireworks takes one rank for '
            "every module (peftDetails.r): retrain without it"
        )
    return problems


def check_target_modules(config: Mapping[str, Any], limit: FireworksLimits) -> list[str]:
    """target_modules against the modules Fireworks serves adapters on."""
    allowed = f"Fireworks takes target_modules among {', '.join(limit.target_modules)}"
    value = config.get("target_modules")
    if value is None:
        return [f'has no "target_modules"; {allowed}']
    if isinstance(value, str):
        return [
            f'"target_modules" is {json.dumps(value)}, a pattern PEFT matches against module '
            f"paths, not a list of modules; {allowed}, listed by name"
        ]
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        return [f'"target_modules" is not a non-empty list of module names; {allowed}']
    problems = []
    for module in dict.fromkeys(value):
        if module in limit.target_modules:
            continue
        short = module.rsplit(".", 1)[-1]
        hint = f" (write it as {short})" if short in limit.target_modules else ""
        problems.append(f'"target_modules" holds {json.dumps(module)[:80]}{hint}; {allowed}')
    return problems


def check_weight_ranks(rank: int | None, ranks: Mapping[str, Any]) -> list[str]:
    """The rank the LoRA tensors have must be the config's r: Fireworks is told one rank
    (peftDetails.r) and loads the weights with it. `ranks` is the safetensors summary's
    {"<rank>": [count, an example tensor]} (adapters/preflight.py); rank None: the config's
    own check has said what is wrong with it."""
    if rank is None:
        return []
    problems = []
    for text, (count, example) in sorted(ranks.items(), key=lambda kv: int(kv[0])):
        if int(text) != rank:
            plural = "s" if count != 1 else ""
            problems.append(
                f"{count} LoRA tensor{plural} (e.g. {json.dumps(example)[:120]}) have rank "
                f'{text}, but adapter_config.json says "r": {rank}; Fireworks takes one rank '
                "for every module (peftDetails.r): save the adapter again"
            )
    return problems


def check_config(raw: bytes, limit: FireworksLimits) -> list[str]:
    """Every problem of adapter_config.json's bytes for Fireworks; [] when it is fine."""
    config = parse_config(raw)
    if isinstance(config, str):
        return [config]
    return [*check_rank(config, limit), *check_target_modules(config, limit)]


def peft_details(raw: bytes, limit: FireworksLimits) -> tuple[int, tuple[str, ...]]:
    """(r, target modules) for the create's peftDetails, from adapter_config.json's bytes
    (ValueError with the problems if check_config finds any)."""
    problems = check_config(raw, limit)
    config = parse_config(raw)
    if problems or isinstance(config, str):
        raise ValueError("; ".join(problems))
    return int(config["r"]), tuple(dict.fromkeys(config["target_modules"]))
