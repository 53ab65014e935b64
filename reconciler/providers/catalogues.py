"""Each account's model catalogue for one run: read from the provider at most once, cached
beside the config with a time-to-live, the bundled snapshot when it cannot be read.

The cache is the project's catalogue.json (Project.catalogue), one entry per (endpoint,
account). Like the stat cache it is only an accelerator: a missing, corrupt or foreign file is
ignored and rebuilt (so is one that is not a regular file or is larger than any catalogue:
read without waiting on a FIFO and within bounds), and no error writing it fails a command. A
catalogue that cannot be read (a token without read permission, an outage) costs one warning:
the stale cached copy is used if there is one, the bundled snapshot otherwise.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from reconciler.adapters.catalogue import (
    CACHED,
    LIVE,
    Catalogue,
    from_records,
    from_snapshot,
    to_records,
)
from reconciler.base import strictjson
from reconciler.base.errors import EndpointError, EnvError, ReconcilerError
from reconciler.base.model import Desired
from reconciler.providers.base import Provider, ServesCatalogue
from reconciler.state.atomic import write_cache

log = logging.getLogger("reconciler.catalogue")

FORMAT = "reconciler-catalogue"
VERSION = 1
DEFAULT_TTL = 86_400.0  # a day: the catalogue changes a few times a year
TTL_ENV = "RECONCILER_CATALOGUE_TTL"
_LAST_STAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last time datetime can show
MAX_CACHE_BYTES = 64 * 1024 * 1024  # Workers AI's catalogue of ~100 models takes ~60 kB

Key = tuple[str, str]  # (provider, account)


@runtime_checkable
class OwnsCatalogue(Protocol):
    """A provider whose catalogue is its own to describe (Fireworks): it ships its snapshot,
    names its catalogue in messages, and lays the config's declared bases over what was read.
    Without it, the snapshot is the shared Limits' lora_models (Cloudflare)."""

    # what lets reconciler read the live catalogue, said when it could not be read
    catalogue_hint: str

    def snapshot_catalogue(self) -> tuple[Catalogue, str]:
        """The bundled snapshot (source SNAPSHOT), with the config's declared bases on top,
        and the date it was taken."""

    def shown_catalogue(self, catalogue: Catalogue) -> Catalogue:
        """A catalogue read live or from the cache, named as the provider names it, with the
        config's declared bases on top (they win over what was read)."""


def ttl_from_env(env: Mapping[str, str]) -> float:
    """The time-to-live in seconds: RECONCILER_CATALOGUE_TTL, or a day (also for a value that
    is not one: commands refuse that first, through checked_ttl)."""
    raw = env.get(TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_TTL
    value = _ttl(raw)
    if value is None:
        log.warning("%s must be a number of seconds >= 0; using a day", TTL_ENV)
        return DEFAULT_TTL
    return value


def checked_ttl(env: Mapping[str, str]) -> float:
    """The time-to-live a command uses: RECONCILER_CATALOGUE_TTL, or a day when unset; a value
    that is not a number of seconds >= 0 is refused by name (EnvError), as the HTTP settings
    are, rather than quietly replaced by a day."""
    raw = env.get(TTL_ENV, "").strip()
    if raw and _ttl(raw) is None:
        raise EnvError(f"{TTL_ENV} must be a number of seconds >= 0 (unset: a day)")
    return ttl_from_env(env)


def _ttl(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 and value != float("inf") else None


def read_cached(
    desired: Desired,
    providers: Mapping[str, Provider],
    cache_file: Path,
    *,
    refresh: bool = False,
    ttl: float = DEFAULT_TTL,
    now: float | None = None,
    root: Path | None = None,
) -> tuple[dict[Key, Catalogue], tuple[str, ...]]:
    """The catalogue of every account that has a declared finetune of a provider that serves
    one, through the cache at `cache_file` (written inside `root`, the project's folder), and
    the warnings to show (one per account that could not be read)."""
    now = time.time() if now is None else now
    stored = _read(cache_file)
    wanted = sorted({(d.provider, d.account) for d in desired.finetunes})
    found: dict[Key, Catalogue] = {}
    warnings: list[str] = []
    changed = False
    for provider_name, account in wanted:
        provider = providers.get(provider_name)
        if not isinstance(provider, ServesCatalogue):
            continue
        slot = f"{provider.endpoint} {account}"
        entry = stored.get(slot)
        cached = _entry_models(entry)
        read_at = _read_at(entry)
        fresh = read_at is not None and 0 <= now - read_at < ttl
        if cached is not None and fresh and not refresh:
            found[(provider_name, account)] = _shown(
                provider, Catalogue(cached, CACHED, _iso(read_at))
            )
            continue
        try:
            models = provider.read_catalogue(account)
            if not models:  # Workers AI always serves models: an empty answer is no catalogue
                raise EndpointError("it came back empty")
        except ReconcilerError as exc:
            found[(provider_name, account)], note = _fallback(
                desired, provider, provider_name, account, cached, read_at, exc
            )
            warnings.append(note)
            continue
        found[(provider_name, account)] = _shown(provider, Catalogue(dict(models), LIVE, _iso(now)))
        stored[slot] = {"read_at": now, "models": to_records(models)}
        changed = True
    if changed:
        _write(cache_file, stored, root)
    return found, tuple(warnings)


def _shown(provider: object, catalogue: Catalogue) -> Catalogue:
    return provider.shown_catalogue(catalogue) if isinstance(provider, OwnsCatalogue) else catalogue


def _fallback(
    desired: Desired,
    provider: object,
    name: str,
    account: str,
    cached: Mapping[str, Any] | None,
    read_at: float | None,
    exc: ReconcilerError,
) -> tuple[Catalogue, str]:
    why = f"the model catalogue of {name} account {account} could not be read ({exc})"
    if cached is not None and read_at is not None:
        when = _iso(read_at)
        return (
            _shown(provider, Catalogue(dict(cached), CACHED, when)),
            f"{why}; checking base models against the copy read at {when}",
        )
    if isinstance(provider, OwnsCatalogue):
        snapshot, date = provider.snapshot_catalogue()
        hint = provider.catalogue_hint
    else:
        limits = desired.limits.get(name)
        lora = getattr(limits, "lora_models", {})
        snapshot = from_snapshot(lora, getattr(limits, "deprecations", {}))
        date = getattr(limits, "snapshot_date", "?")
        hint = "a token with the 'Workers AI Read' permission lets reconciler read the live one"
    return (
        snapshot,
        f"{why}; checking base models against the bundled snapshot of {date} instead ({hint})",
    )


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_at(entry: Any) -> float | None:
    """When the entry was read: a time a date can be made of (NaN, 1e308 or true in a hand
    edited file would make one fail), else None, and the entry is not used."""
    value = entry.get("read_at") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= _LAST_STAMP else None  # (NaN fails both)


def _entry_models(entry: Any) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        return None
    return from_records(entry.get("models"))


def _read(path: Path) -> dict[str, Any]:
    if path.is_symlink():  # the project's own state, not a file elsewhere: not followed
        return {}
    try:
        document = json.loads(strictjson.read_bytes(path, MAX_CACHE_BYTES))
    except (OSError, ValueError, RecursionError):  # strictjson.Refused is a ValueError
        return {}
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or document.get("version") != VERSION
        or not isinstance(document.get("entries"), dict)
    ):
        return {}
    return dict(document["entries"])


def _write(path: Path, entries: Mapping[str, Any], root: Path | None) -> None:
    document = {"format": FORMAT, "version": VERSION, "entries": dict(sorted(entries.items()))}
    # an accelerator: never fail a command for it
    if not write_cache(path, document, project_root=root, indent=1, sort_keys=True):
        log.info("could not save the catalogue cache %s", path)
