"""The base-model notes of a config that failed its checks before its models were read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.config.items import ItemKind


def model_warnings(config_path: Path, kinds: Mapping[str, ItemKind]) -> list[str]:
    """ "file:line:col: warning: ..." for each model the bundled snapshot does not know, read
    from the raw YAML: a key typo stops the config before its models are checked, and a model
    typo beside it would otherwise show only once the key is fixed. Best effort: whatever
    cannot be read here is the loader's to report."""
    from reconciler.base.errors import ConfigError
    from reconciler.config.loader import MAX_CONFIG_BYTES
    from reconciler.config.yamlsource import parse, read_text

    try:  # bounded, a regular file only, as the loader reads it (-c /dev/zero, a FIFO)
        text, _ = read_text(config_path, str(config_path), MAX_CONFIG_BYTES)
    except ConfigError:
        return []
    source, _ = parse(text, str(config_path))
    data = source.data if source is not None else None
    if source is None or not isinstance(data, dict) or not isinstance(data.get("finetunes"), list):
        return []
    given = data.get("providers")
    blocks: Mapping[str, Any] = given if isinstance(given, dict) else {}
    found: list[str] = []
    for i, item in enumerate(data["finetunes"]):
        for message in _notes(item, blocks, kinds):
            problem = source.problem(("finetunes", i, "model"), message)
            found.append(str(problem).replace(": error: ", ": warning: ", 1))
    return found


def _notes(item: Any, blocks: Mapping[str, Any], kinds: Mapping[str, ItemKind]) -> list[str]:
    from reconciler.adapters.preflight import LimitsError, model_notes
    from reconciler.base.model import DesiredFinetune

    if not isinstance(item, dict):
        return []
    provider, model, name = item.get("provider"), item.get("model"), item.get("name")
    if not isinstance(provider, str) or not isinstance(model, str) or provider not in kinds:
        return []
    block = blocks.get(provider)
    try:
        limits = kinds[provider].limits(block if isinstance(block, dict) else {})
    except (LimitsError, OSError):
        return []
    if limits is None:
        return []
    desired = DesiredFinetune(
        name=str(name),
        provider=provider,
        account="",
        model=model,
        description=None,
        public=False,
        assets=(),
    )
    return [f"finetune '{name}': {m}" for m in model_notes(desired, limits)]
