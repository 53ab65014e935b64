"""Adapter pre-flight checks: run by validate and plan before any remote call.

Uploads to Cloudflare are one-way (no update, no delete), so an adapter found bad after its
upload costs a finetune name. The checks read an adapter through an AdapterFiles: a local
folder (read_config, read_weights) or a remote source's commit. The limits are data
(reconciler/data/<provider>.json) that the config may override, since Cloudflare changes them.

Messages name the file they are about (relative to the adapter folder) and say what to do;
the caller adds the config line.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from reconciler.adapters.safetensors import Header, SafetensorsError, parse_header, read_header
from reconciler.base.model import DesiredFinetune
from reconciler.base.suggest import NEAR_IDENTICAL, did_you_mean
from reconciler.state.statcache import StatCache

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
# Name fragments of quantized Workers AI models: LoRA needs full-precision base weights. Only a
# hint in a message about a model the catalogue already refuses: "-fp8" is not here, since
# Cloudflare serves LoRAs on an -fp8-fast model.
QUANTIZED_HINTS = ("-awq", "-int8", "-gptq", "-int4", "-q4", "-q8")
# A PEFT adapter_config.json is a few kB; parsing one far bigger is wasted memory, and such a
# file is surely not the config it claims to be.
MAX_CONFIG_BYTES = 1_000_000

OVERRIDABLE = (
    "max_asset_bytes",
    "max_lora_rank",
    "max_finetunes_per_account",
    "supported_model_types",
    "lora_models",
    "required_files",
)


class LimitsError(ValueError):
    """A limit in the data file or the config's overrides has the wrong shape."""


@dataclass(frozen=True)
class Limits:
    max_asset_bytes: int
    max_lora_rank: int
    max_finetunes_per_account: int
    supported_model_types: tuple[str, ...]
    # base model -> the adapter model_type family it takes; None where the provider documents
    # none (qwen, deepseek): any documented value is accepted there, with a warning
    lora_models: Mapping[str, str | None]
    required_files: tuple[str, ...]
    # models the config itself declares LoRA-capable: they win over any catalogue
    declared_models: frozenset[str] = frozenset()
    # the snapshot's planned deprecation dates, for when the live catalogue cannot be read
    deprecations: Mapping[str, str] = field(default_factory=dict)
    snapshot_date: str = "?"
    provider: str = "<provider>"  # the config's name for it: providers.<provider>.limits
    title: str = "the provider"  # how messages name the one who documents these limits
    # whether the limits name the LoRA-capable base models and their adapters' model_type
    # (Cloudflare's do); a self-hosted server takes whatever base it serves
    knows_models: bool = True

    @classmethod
    def from_data(
        cls, data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> Limits:
        """The published limits, with the config's overrides on top. `lora_models` merges
        over the published list (a user adds a model Cloudflare has since made LoRA-capable);
        every other key replaces. Raises LimitsError naming the bad key."""
        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(OVERRIDABLE))
        if unknown:
            raise LimitsError(
                f"unknown limit {', '.join(unknown)}; the limits are {', '.join(OVERRIDABLE)}"
            )
        merged = {**data, **overrides}
        declared = _mapping(overrides, "lora_models")
        models = {**_mapping(data, "lora_models"), **declared}
        limits = cls(
            max_asset_bytes=_positive(merged, "max_asset_bytes"),
            max_lora_rank=_positive(merged, "max_lora_rank"),
            max_finetunes_per_account=_positive(merged, "max_finetunes_per_account"),
            supported_model_types=_names(merged, "supported_model_types"),
            lora_models=dict(sorted(models.items())),
            required_files=_names(merged, "required_files"),
            declared_models=frozenset(declared),
            deprecations=dict(data.get("planned_deprecations") or {}),
            snapshot_date=str(data.get("snapshot_date", "?")),
            provider=str(data.get("provider", "<provider>")),
            title=str(data.get("title", "the provider")),
            knows_models=bool(data.get("knows_models", True)),
        )
        strays = sorted(
            m for m, t in models.items() if t is not None and t not in limits.supported_model_types
        )
        if strays:
            raise LimitsError(
                f"lora_models: {', '.join(strays)} map to a model_type not in "
                f"supported_model_types ({', '.join(limits.supported_model_types)})"
            )
        return limits


def _positive(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise LimitsError(f"{key} must be a whole number of at least 1, not {value!r}")
    return value


def _names(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise LimitsError(f"{key} must be a non-empty list of strings, not {value!r}")
    return tuple(value)


def _mapping(data: Mapping[str, Any], key: str) -> dict[str, str | None]:
    value = data.get(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    ):
        raise LimitsError(
            f"{key} must map model names to a model_type (or null where none is documented), "
            f"not {value!r}"
        )
    return dict(value)


class AdapterFiles(Protocol):
    """What the checks read of an adapter's files, wherever they are: a local folder
    (sources.local) or a remote source's commit (sources.hf, sources.url). Each answer may come
    from a cache: an unchanged file, or an immutable commit, is not read twice."""

    def names(self) -> Collection[str]:
        """Every file name in the adapter's folder; OSError if it cannot be listed."""

    def entry(self, name: str) -> tuple[int, str | None]:
        """(size, None), or (0, why the file cannot be used: "cannot be read (...)")."""

    def config(self, name: str) -> dict[str, Any]:
        """adapter_config.json as parse_config reads it."""

    def weights(self, name: str) -> dict[str, Any]:
        """The safetensors header as weights_summary reads it."""


def check_adapter(desired: DesiredFinetune, files: AdapterFiles, limits: Limits) -> list[str]:
    """Every problem with one finetune's base model and adapter files; [] when it is fine.
    `files` is any source's view of them (sources.local for a folder: with a stat cache, what
    was read from an unchanged file is taken from it, and no byte is read). Whether the base
    model takes adapters is not checked here (see model_notes): only the account's live
    catalogue can say, and plan asks it."""
    problems: list[str] = []
    config: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None
    try:
        present = set(files.names())
    except OSError as exc:
        return [*problems, f"the adapter folder cannot be listed ({exc.strerror or exc})"]
    for name in limits.required_files:
        if name not in present:  # exact names: a case-insensitive disk must not hide a typo
            problems.append(_missing(name, present, limits.required_files))
            continue
        size, unusable = files.entry(name)
        if unusable is not None:
            problems.append(f"{name}: {unusable}")
            continue
        if size == 0:
            problems.append(f"{name}: is empty (0 bytes); expected the adapter's {name}")
            continue
        if name == WEIGHTS:
            weights = files.weights(name)
            problems.extend(f"{name}: {p}" for p in weights["problems"])
        if size > limits.max_asset_bytes:
            problems.append(
                f"{name}: is {size:,} bytes, over the provider's limit of "
                f"{limits.max_asset_bytes:,} bytes per file; "
                f"{_what_is_large(weights if name == WEIGHTS else None)} (raise "
                "max_asset_bytes in the config only if the provider's limit has changed)"
            )
        if name == CONFIG and size > MAX_CONFIG_BYTES:
            problems.append(
                f"{name}: is {size:,} bytes; an adapter config is a few kB: is it the right file?"
            )
        elif name == CONFIG:
            config = files.config(name)
            problems.extend(f"{name}: {p}" for p in _check_config(config, desired.model, limits))
    if config is not None and weights is not None and not weights["problems"]:
        problems.extend(f"{WEIGHTS}: {p}" for p in _check_ranks(config, weights, limits))
    return problems


def model_notes(desired: DesiredFinetune, limits: Limits) -> list[str]:
    """Warnings, never errors, about the base model as far as the bundled snapshot knows it:
    offline (validate) the snapshot may be out of date, and plan checks the live catalogue."""
    model = desired.model
    if model in limits.lora_models or not limits.knows_models:
        return []
    if f"{model}-lora" in limits.lora_models:
        hint = f" (did you mean {model}-lora?)"
    else:
        hint = quantized_hint(model) or did_you_mean(
            model, sorted(limits.lora_models), "", NEAR_IDENTICAL
        )
    return [
        f"model {model} is not among the LoRA-capable models of the bundled snapshot "
        f"({limits.snapshot_date}){hint}; plan checks it against the account's live model "
        "catalogue"
    ]


def quantized_hint(model: str) -> str:
    if any(q in model.lower() for q in QUANTIZED_HINTS):
        return " (it looks quantized: LoRA adapters need a full-precision base model)"
    return ""


def ignored_files(folder: Path, limits: Limits) -> list[str]:
    """Files in the adapter folder that are not uploaded: worth a note, never an error."""
    try:
        return sorted(p.name for p in folder.iterdir() if p.name not in limits.required_files)
    except OSError:
        return []


def check_account_capacity(
    account: str, existing: int, to_create: int, limits: Limits
) -> str | None:
    """A message when creating `to_create` more finetunes would pass the per-account cap."""
    total = existing + to_create
    if to_create <= 0 or total <= limits.max_finetunes_per_account:
        return None
    return (
        f"account {account} holds {existing} finetunes and the plan creates {to_create}: "
        f"{total} would exceed the limit of {limits.max_finetunes_per_account} per account "
        f"by {total - limits.max_finetunes_per_account}; declare fewer new finetunes or use "
        "another account (raise max_finetunes_per_account in the config only if your "
        "account's limit is higher)"
    )


def _missing(name: str, present: Collection[str], required: tuple[str, ...]) -> str:
    # only other names: a present required file is no near-miss of the missing one
    others = [n for n in present if n not in required]
    stem = name.split(".")[0].lower()
    near = [n for n in others if n.lower().startswith(stem)]
    near += [n for n in difflib.get_close_matches(name, others, n=3) if n not in near]
    if not near:
        return f"{name}: not found in the adapter folder; the provider requires this exact name"
    found = f"{name}: not found, but the folder has {', '.join(sorted(near))}"
    if name.endswith(".safetensors") and any(
        n.lower().endswith((".bin", ".pt", ".pth")) for n in near
    ):
        return (
            f"{found}; convert the weights to safetensors, saved as exactly {name} "
            "(PEFT: save_pretrained(..., safe_serialization=True))"
        )
    return f"{found}; rename it to exactly {name} (names are case-sensitive)"


# In the stat cache (the names carry a version: an entry of an older shape is never misread):
CONFIG_FACT = "adapter-config/2"  # {"error": text} or {"keys": {...}}
WEIGHTS_FACT = "safetensors-summary/2"  # {"problems": [...], "ranks": {...}, "largest": [...]}
_CONFIG_KEYS = ("model_type", "r", "rank_pattern")  # all the checks look at
LARGEST_KEPT = 3  # the non-LoRA tensors named when a file is too large


def read_config(path: Path, st: os.stat_result, cache: StatCache | None) -> dict[str, Any]:
    """adapter_config.json, as far as the checks need it: {"error": why it is unusable}, or
    {"keys": the keys they look at, those present}."""
    if cache is not None:
        known = cache.get(path, st, CONFIG_FACT)
        if isinstance(known, dict):
            return known
        fence = cache.fence()  # before the read
    found = _parse_config(path)
    if cache is not None:
        cache.put(path, st, CONFIG_FACT, found, fence)
    return found


def _parse_config(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return {"error": f"cannot be read ({exc.strerror or exc})"}
    return parse_config(raw)


def parse_config(raw: bytes) -> dict[str, Any]:
    """read_config's answer for the file's bytes, wherever they were read from."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {"error": f"is not UTF-8 text (invalid byte at offset {exc.start})"}
    try:
        config = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        return {"error": f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"}
    except (ValueError, RecursionError) as exc:
        return {"error": f"is not acceptable JSON ({str(exc)[:200]})"}
    if not isinstance(config, dict):
        return {"error": f"must be a JSON object, not {type(config).__name__}"}
    return {"keys": {k: config[k] for k in _CONFIG_KEYS if k in config}}


def _check_config(found: dict[str, Any], model: str, limits: Limits) -> list[str]:
    if "error" in found:
        return [str(found["error"])]
    config = found.get("keys", {})
    types = _check_model_type(config, model, limits) if limits.knows_models else []
    return [*types, *_check_rank(config, limits)]


def _check_model_type(config: Mapping[str, Any], model: str, limits: Limits) -> list[str]:
    family = limits.lora_models.get(model)
    choices = ", ".join(limits.supported_model_types)
    if "model_type" not in config:
        add = f'add "model_type": "{family}"' if family else f"add one of {choices}"
        return [f'has no "model_type", which the provider requires; {add}']
    value = config["model_type"]
    if value not in limits.supported_model_types:
        return [f'"model_type" is {json.dumps(value)}; the provider accepts {choices}']
    if family is not None and value != family:
        bases = [m for m, t in limits.lora_models.items() if t == value]
        return [
            f'"model_type" is "{value}" but the base model {model} takes "{family}" adapters; '
            f"use a {family} adapter, or a {value} base model ({', '.join(bases)})"
        ]
    return []


def _check_rank(config: Mapping[str, Any], limits: Limits) -> list[str]:
    allowed = f"a whole number from 1 to {limits.max_lora_rank}"
    if "r" not in config:
        return [f'has no "r" (the LoRA rank), which the provider requires; expected {allowed}']
    rank = config["r"]
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        return [f'"r" is {json.dumps(rank)}; expected {allowed}']
    if rank > limits.max_lora_rank:
        return [
            f'"r" is {rank}, over the provider\'s rank limit of {limits.max_lora_rank}; retrain '
            f"with r <= {limits.max_lora_rank} (raise max_lora_rank in the config only if the "
            "provider allows more for this model)"
        ]
    return []


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys; the provider's parser may keep the first
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {json.dumps(key)[:80]} appears twice")
        result[key] = value
    return result


def _no_constant(token: str) -> None:
    raise ValueError(f"{token} is not a JSON number")


def read_weights(path: Path, st: os.stat_result, cache: StatCache | None) -> dict[str, Any]:
    """What the checks need of the safetensors header: its problems, the LoRA ranks its
    tensors have ({rank: [count, an example tensor]}) and its largest non-LoRA tensors."""
    if cache is not None:
        known = cache.get(path, st, WEIGHTS_FACT)
        if isinstance(known, dict) and isinstance(known.get("problems"), list):
            return known
        fence = cache.fence()  # before the read
    try:
        summary = summarize(read_header(path))
    except SafetensorsError as exc:
        summary = {"problems": list(exc.problems), "ranks": {}, "largest": []}
    if cache is not None:
        cache.put(path, st, WEIGHTS_FACT, summary, fence)
    return summary


def weights_summary(f: BinaryIO, size: int) -> dict[str, Any]:
    """read_weights' answer for a file of `size` bytes read through `f` (a remote source's
    Range reads): reads at most the 8-byte length and the header it announces."""
    try:
        return summarize(parse_header(f, size))
    except SafetensorsError as exc:
        return {"problems": list(exc.problems), "ranks": {}, "largest": []}


def summarize(header: Header) -> dict[str, Any]:
    """One pass over the tensors: the rank of each LoRA pair (lora_A: [r, in], lora_B:
    [out, r], likewise lora_embedding_A/B) and the biggest tensors that are not LoRA weights
    (lm_head or embed_tokens saved by modules_to_save)."""
    ranks: dict[str, list[Any]] = {}
    others: list[tuple[int, str]] = []
    for t in header.tensors:
        name = t.name
        if "lora_A" in name or "lora_embedding_A" in name:
            # [r, in] (or [r, in, k, k] for a convolution): a 1-D tensor has no rank to read
            rank = t.shape[0] if len(t.shape) >= 2 else None
        elif "lora_B" in name or "lora_embedding_B" in name:
            rank = t.shape[1] if len(t.shape) >= 2 else None
        else:
            others.append((t.end - t.begin, name))
            continue
        if rank is not None:
            seen = ranks.setdefault(str(rank), [0, name])
            seen[0] += 1
    others.sort(key=lambda x: (-x[0], x[1]))
    return {
        "problems": [],
        "ranks": ranks,
        "largest": [[n, size] for size, n in others[:LARGEST_KEPT]],
    }


def _what_is_large(weights: Mapping[str, Any] | None) -> str:
    largest = (weights or {}).get("largest") or []
    big = [(str(n), int(size)) for n, size in largest if int(size) > 0]
    if not big:
        return "a lower rank or fewer target modules make it smaller"
    named = ", ".join(f"{json.dumps(n)[:100]} ({size:,} bytes)" for n, size in big)
    return (
        f"its largest tensors are not LoRA weights: {named}; these are full layers saved "
        "with the adapter (PEFT's modules_to_save, often lm_head or embed_tokens): train "
        "without modules_to_save, or with a lower rank or fewer target modules"
    )


def _check_ranks(
    config: Mapping[str, Any], weights: Mapping[str, Any], limits: Limits
) -> list[str]:
    """The rank the config declares must be the rank the tensors have: Cloudflare loads the
    weights with the config's r, and a mismatch fails only when the adapter is first run."""
    keys = config.get("keys")
    if not isinstance(keys, Mapping):
        return []
    r = keys.get("r")
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        return []  # _check_rank has said why
    pattern = keys.get("rank_pattern")
    allowed = {r}
    if isinstance(pattern, Mapping):
        allowed |= {v for v in pattern.values() if isinstance(v, int) and not isinstance(v, bool)}
    problems: list[str] = []
    ranks: Mapping[str, Any] = weights.get("ranks") or {}
    for rank_text, (count, example) in sorted(ranks.items(), key=lambda kv: int(kv[0])):
        rank = int(rank_text)
        tensors = (
            f"{count} LoRA tensor{'s' if count != 1 else ''} (e.g. {json.dumps(example)[:120]})"
        )
        if rank > limits.max_lora_rank:
            problems.append(
                f"{tensors} have rank {rank}, over the provider's rank limit of "
                f"{limits.max_lora_rank}; retrain with r <= {limits.max_lora_rank}"
            )
        elif rank not in allowed:
            said = f'"r": {r}' + (" and its rank_pattern" if len(allowed) > 1 else "")
            problems.append(
                f"{tensors} have rank {rank}, but {CONFIG} says {said}: the config must "
                "describe these weights (save both with the same PEFT save_pretrained call)"
            )
    return problems


__all__ = [
    "AdapterFiles",
    "Limits",
    "LimitsError",
    "check_account_capacity",
    "check_adapter",
    "ignored_files",
    "model_notes",
    "parse_config",
    "quantized_hint",
    "read_config",
    "read_weights",
    "summarize",
    "weights_summary",
]
