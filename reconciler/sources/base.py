"""What every source is and holds: the Source protocol, its records and errors, the Context
it is given, and what the remote sources share (Fetched, HeadReader). The package's
__init__ says what a source does; sources.registry says which module serves which kind."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from reconciler.base.errors import ReconcilerError
from reconciler.base.model import AssetSource
from reconciler.project import Project


class SourceError(ReconcilerError):
    """A source cannot be read as declared: a repo, revision or file missing, a network
    failure, a digest that differs from the one expected, huggingface_hub not installed."""


@dataclass(frozen=True)
class SourceFile:
    name: str  # relative to the source's folder: adapter_model.safetensors
    size: int
    sha256: str | None  # "sha256:<hex>" where known without reading the content
    label: str  # where it is: hf://acme/support-lora@<commit>/adapter_model.safetensors, a URL


@dataclass(frozen=True)
class Resolved:
    """What a source holds, at the commit a revision names now."""

    label: str  # shown in plans: hf://acme/support-lora@3f2a91c, or the URL's host and path
    files: Mapping[str, SourceFile]  # every file of the folder, by name
    # what the declaration resolved to, for a saved plan's staleness: a commit, or None
    pin: str | None = None
    warnings: tuple[str, ...] = field(default=())


class Source(Protocol):
    def resolve(self) -> Resolved: ...

    def header(self, name: str, length: int) -> bytes:
        """The first `length` bytes of the file (fewer if it is shorter)."""

    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        """The file's bytes as a stream; not verified: the reader hashes what it reads."""


class RemoteSource(Source, Protocol):
    """A source that is not a local folder: it also answers what the pre-flight checks read
    (preflight.AdapterFiles: names, entry, config, weights), from what it keeps per commit or
    per declared digest."""

    def digest(self, name: str) -> str:
        """The sha256 of a file resolve() knew none for (a Hub file not in LFS), read once."""

    def fetch(self, name: str) -> Path:
        """The file in a local file (the HF cache, a download), streamed there, for apply."""

    def names(self) -> Collection[str]: ...

    def entry(self, name: str) -> tuple[int, str | None]: ...

    def config(self, name: str) -> dict[str, Any]: ...

    def weights(self, name: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Context:
    """What every source may need: the environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE)
    and the project's places (what was learnt in project.sources, files fetched in
    project.downloads; nothing written outside project.root)."""

    env: Mapping[str, str]
    project: Project


Factory = Callable[[AssetSource, Mapping[str, AssetSource], Context], RemoteSource]


class Fetched:
    """What the remote sources do alike: a file's first bytes through Range reads of what was
    not read yet (the checks ask for 8 bytes, then for the header those announce; neither
    reads a byte of the tensors), kept per file; and a stream of the fetched file."""

    _heads: dict[str, bytes]

    def _range(self, name: str, start: int, end: int) -> bytes:
        raise NotImplementedError

    def fetch(self, name: str) -> Path:
        raise NotImplementedError

    def header(self, name: str, length: int) -> bytes:
        have = self._heads.get(name, b"")
        if len(have) < length:
            have += self._range(name, len(have), length)
            self._heads[name] = have
        return have[:length]

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        with self.fetch(name).open("rb") as f:
            yield f


class HeadReader:
    """A read-only file over a source's header(): what safetensors.parse_header reads from,
    so that it reads exactly the length and the header it announces, nothing more."""

    def __init__(self, source: Source, name: str) -> None:
        self._source, self._name, self._pos = source, name, 0

    def read(self, n: int = -1) -> bytes:
        data = self._source.header(self._name, self._pos + n)[self._pos :]
        self._pos += len(data)
        return data


def is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hashed(path: Path, chunk: int = 256 * 1024) -> tuple[int, str]:
    """A file's size and sha256 (hex), streamed: what a source checks a file it keeps by."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while piece := f.read(chunk):
            h.update(piece)
            size += len(piece)
    return size, h.hexdigest()
