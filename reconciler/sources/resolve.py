"""The remote sources of a config, at plan time (resolve_all: digests, pins, checks) and at
apply time (Fetcher: each file in a local file, verified against the planned sha256)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.base.errors import ConfigError, Problem
from reconciler.base.model import AssetDigest, AssetFile, Desired, DesiredFinetune
from reconciler.sources.base import Context, RemoteSource, Resolved, SourceError, hashed
from reconciler.sources.registry import build

# a provider's own pre-flight of an adapter read through its source (a finetune, the source)
# -> its problems, each "FILE: what is wrong" (Fireworks: rank and target modules)
RemoteCheck = Callable[[DesiredFinetune, RemoteSource], list[str]]

WORKERS = 4  # sources read at once: each is a few small requests, mostly waiting


@dataclass(frozen=True)
class Resolution:
    # the stand-in path of each remote asset -> its digest (size and sha256 from metadata or
    # the declaration, `source` the file's place at the resolved commit)
    digests: Mapping[Path, AssetDigest] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # each declared source -> what it resolved to: a saved plan is stale when one moves
    pins: Mapping[str, str] = field(default_factory=dict)
    fetcher: Fetcher | None = None


def declared(d: DesiredFinetune) -> str | None:
    """One finetune's remote source as declared, for pins: hf://REPO@REVISION[/SUBFOLDER]."""
    specs = [a.source for a in d.assets if a.source is not None]
    if not specs or specs[0].kind != "hf":
        return None
    s = specs[0]
    return f"hf://{s.location}@{s.revision or 'main'}" + (f"/{s.subfolder}" if s.subfolder else "")


def resolve_all(
    desired: Desired, ctx: Context, checks: Mapping[str, RemoteCheck] | None = None
) -> Resolution:
    """Every remote asset's digest, from metadata only (no weight byte is read), with the
    pre-flight checks of its adapter through the source: the shared `Limits` checks, and a
    provider's own (`checks`: provider -> its check of an adapter's files, where it has
    one). ConfigError names each finetune whose source cannot be read or whose adapter
    fails a check, at its line."""
    remote = [d for d in desired.finetunes if any(a.source is not None for a in d.assets)]
    if not remote:
        return Resolution()
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(remote))) as pool:
        results = list(pool.map(lambda d: _one(d, desired, ctx, checks or {}), remote))
    digests: dict[Path, AssetDigest] = {}
    warnings: list[str] = []
    pins: dict[str, str] = {}
    problems: list[Problem] = []
    sources: dict[str, RemoteSource] = {}
    for d, (found, notes, pin, trouble, source) in zip(remote, results, strict=True):
        digests.update(found)
        warnings += [_warning(d, n) for n in notes]
        problems += trouble
        key = declared(d)
        if key is not None and pin is not None:
            pins[key] = pin
        if source is not None:
            sources[d.name] = source
    if problems:
        raise ConfigError(problems)
    return Resolution(digests, tuple(dict.fromkeys(warnings)), pins, Fetcher(sources))


def _one(
    d: DesiredFinetune, desired: Desired, ctx: Context, checks: Mapping[str, RemoteCheck]
) -> tuple[
    dict[Path, AssetDigest], tuple[str, ...], str | None, list[Problem], RemoteSource | None
]:
    files = {a.name: a.source for a in d.assets if a.source is not None}
    try:
        source = build(files, ctx)
        resolved = source.resolve()
        found: dict[Path, AssetDigest] = {}
        problems: list[Problem] = []
        limits = desired.limits.get(d.provider)
        if limits is not None:
            from reconciler.adapters.preflight import check_adapter

            problems += [_problem(d, _at(resolved, m)) for m in check_adapter(d, source, limits)]
        own = checks.get(d.provider)
        if own is not None:
            problems += [_problem(d, _at(resolved, m)) for m in own(d, source)]
        for a in d.assets:
            if a.source is None:
                continue
            f = resolved.files.get(a.name)
            if f is None:
                if limits is None:  # else the checks said so, with near-misses
                    problems.append(_problem(d, f"{resolved.label}: {a.name} not found"))
                continue
            sha = f.sha256 or source.digest(a.name)
            found[a.path] = AssetDigest(a.name, f.size, sha, source=f.label)
    except SourceError as exc:
        return {}, (), None, [_problem(d, str(exc))], None
    pin = resolved.pin or resolved.label
    return found, resolved.warnings, pin, problems, source


def _at(resolved: Resolved, message: str) -> str:
    """A check's message ("adapter_config.json: has no ...") at the file it is about: in the
    folder the source's label names (a URL source's ends in "/"), or, where its files share
    no folder (URLs on two hosts: the label lists them), at the file's own URL."""
    name, colon, rest = message.partition(":")
    f = resolved.files.get(name)
    if ", " in resolved.label and f is not None and colon:
        return f"{f.label}:{rest}"
    return f"{resolved.label.rstrip('/')}/{message}"


def _problem(d: DesiredFinetune, message: str) -> Problem:
    mark = d.mark
    return Problem(
        mark.file if mark else "config",
        mark.line if mark else None,
        mark.column if mark else None,
        f"finetune '{d.name}': adapter {message}",
    )


def _warning(d: DesiredFinetune, message: str) -> str:
    return str(_problem(d, message)).replace(": error: ", ": warning: ", 1)


class Fetcher:
    """Apply's side: each remote asset in a local file holding exactly the planned bytes,
    streamed there (the HF cache, a download), never held in memory. Verified here, before
    the finetune is created, so a file that is not what was planned creates nothing."""

    def __init__(self, sources: Mapping[str, RemoteSource]) -> None:
        self._sources = dict(sources)

    def stage(self, finetune: str, asset: AssetFile, expected: AssetDigest | None) -> AssetFile:
        """The asset as a local file to upload. Raises SourceError if its bytes differ from
        `expected` (the plan's digest), naming both digests."""
        if asset.source is None:
            return asset
        source = self._sources.get(finetune)
        if source is None:
            raise SourceError(f"{finetune}: {asset.name}: its source was not resolved")
        path = source.fetch(asset.name)
        if expected is not None:
            size, sha = _digest(path)
            if sha != expected.sha256 or size != expected.size:
                where = expected.source or asset.name
                raise SourceError(
                    f"{where}: the bytes fetched have {sha[:19]}… ({size:,} bytes), not the "
                    f"planned {expected.short}… ({expected.size:,} bytes): nothing was "
                    "uploaded or created for it; plan again"
                )
        return replace(asset, path=path, source=None)


def _digest(path: Path) -> tuple[int, str]:
    size, hex_ = hashed(path)
    return size, "sha256:" + hex_
