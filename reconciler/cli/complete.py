"""Shell completion of finetune names (`reconciler forget <TAB>`), from the local files only.

click drives completion (`eval "$(_RECONCILER_COMPLETE=bash_source reconciler)"`); these give
it the names: the config's and the lockfile's, read as plainly as possible. Completion must be
instant and must never fail or call a network, so a file that cannot be read gives no names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

Complete = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _config(ctx: click.Context) -> Path:
    given = ctx.params.get("config_path")
    return Path(given or os.environ.get("RECONCILER_CONFIG") or "finetunes.yaml")


def declared(config: Path) -> set[str]:
    """The names the config declares (no ${ENV} resolved, no validation)."""
    try:
        import yaml

        data: Any = yaml.safe_load(config.read_text(encoding="utf-8"))
        items = data.get("finetunes") or []
        return {
            i["name"] for i in items if isinstance(i.get("name"), str) and "${" not in i["name"]
        }
    except Exception:  # whatever the file holds, completion offers nothing rather than fail
        return set()


def recorded(config: Path) -> set[str]:
    """The names in the config's lockfile."""
    try:
        from reconciler.project import Project

        lock = Project.at(config).lockfile
        data: Any = json.loads(lock.read_text(encoding="utf-8"))
        return {n for n in data.get("finetunes") or {} if isinstance(n, str)}
    except Exception:
        return set()


def names(config: bool = True, lock: bool = True, files: bool = False) -> Complete:
    """A completer of finetune names from the config, the lockfile or both (and, with
    `files`, paths too: `show` takes a plan file)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        path = _config(ctx)
        found = (declared(path) if config else set()) | (recorded(path) if lock else set())
        items = [CompletionItem(n) for n in sorted(found) if n.startswith(incomplete)]
        # first: click's bash script empties the replies at a `file` item (then lets bash
        # complete paths when nothing else matched), so names after it are kept
        return [CompletionItem(incomplete, type="file"), *items] if files else items

    return complete
