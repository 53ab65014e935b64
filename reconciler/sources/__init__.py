"""Where adapter files come from: a local folder, a Hugging Face Hub repo, HTTPS URLs.

A source is chosen by the config's shape, as a provider is by its name: one module each,
behind one protocol, registered in one dict (SOURCES). What a source does:

    resolve()          the files it holds: size, and sha256 where known without reading the
                       content (the Hub's LFS metadata, a URL's declared digest); a revision
                       resolved to its commit
    header(name, n)    the first n bytes of a file, for the pre-flight checks (Range reads)
    open(name)         a byte stream of a file, for apply

Plan reads metadata and headers only, never weights; apply streams, and verifies every byte
against the expected sha256 itself (huggingface_hub checks a download's size, never its
sha256).
"""

from __future__ import annotations

from reconciler.sources.base import (
    Context,
    Factory,
    Fetched,
    HeadReader,
    RemoteSource,
    Resolved,
    Source,
    SourceError,
    SourceFile,
    is_true,
)
from reconciler.sources.registry import SOURCES, build
from reconciler.sources.resolve import Fetcher, Resolution, resolve_all

__all__ = [
    "SOURCES",
    "Context",
    "Factory",
    "Fetched",
    "Fetcher",
    "HeadReader",
    "RemoteSource",
    "Resolution",
    "Resolved",
    "Source",
    "SourceError",
    "SourceFile",
    "build",
    "is_true",
    "resolve_all",
]
