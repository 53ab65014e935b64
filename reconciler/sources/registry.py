"""Which module serves which kind of source: SOURCES, a plain dict, as providers.registry is
for providers. Each module is imported when a config names its kind (huggingface_hub is an
optional extra)."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.base.model import AssetSource
from reconciler.sources.base import Context, Factory, RemoteSource


def _hf(spec: AssetSource, files: Mapping[str, AssetSource], ctx: Context) -> RemoteSource:
    from reconciler.sources.hf import HfSource

    return HfSource(spec.location, spec.revision, spec.subfolder, ctx)


def _url(spec: AssetSource, files: Mapping[str, AssetSource], ctx: Context) -> RemoteSource:
    from reconciler.sources.url import UrlSource

    return UrlSource(files, ctx)


# kind -> how to build the source of a finetune's assets (all its AssetFiles' sources, by name).
# The local folder needs no factory: config.py finds its files and preflight reads them through
# local.LocalSource.
SOURCES: dict[str, Factory] = {"hf": _hf, "url": _url}


def build(files: Mapping[str, AssetSource], ctx: Context) -> RemoteSource:
    """The source of one finetune's remote assets (all of one kind, as the config declares)."""
    first = next(iter(files.values()))
    return SOURCES[first.kind](first, files, ctx)
