"""The records that flow between the rooms: plain frozen dataclasses, no behaviour worth testing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SourceMark:
    """Where something was declared, for messages: 1-based line and column."""

    file: str
    line: int
    column: int


@dataclass(frozen=True)
class AssetFile:
    """A local file to upload as one asset of a finetune."""

    name: str  # the remote file name, e.g. adapter_config.json
    path: Path


@dataclass(frozen=True)
class AssetDigest:
    name: str
    size: int
    sha256: str  # "sha256:<64 hex>"

    @property
    def short(self) -> str:
        return self.sha256[: len("sha256:") + 12]


@dataclass(frozen=True)
class DesiredFinetune:
    name: str
    provider: str
    account: str
    model: str
    description: str | None
    public: bool
    assets: tuple[AssetFile, ...]
    mark: SourceMark | None = field(default=None, compare=False)

    @property
    def fields(self) -> dict[str, object]:
        """The remote-visible fields, as the plan compares them."""
        return {"model": self.model, "description": self.description, "public": self.public}


@dataclass(frozen=True)
class Desired:
    config_path: Path
    finetunes: tuple[DesiredFinetune, ...]
    # provider -> account ids the config manages (listed even when no finetune is left in them)
    accounts: Mapping[str, tuple[str, ...]]
    # provider -> its limits (preflight.Limits: published values with the config's overrides)
    limits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteFinetune:
    provider: str
    account: str
    id: str
    name: str
    model: str
    description: str | None
    public: bool
    created_at: str | None = None
    modified_at: str | None = None

    @property
    def fields(self) -> dict[str, object]:
        return {"model": self.model, "description": self.description, "public": self.public}


@dataclass(frozen=True)
class Observed:
    """What the providers' list endpoints returned, per (provider, account)."""

    finetunes: Mapping[tuple[str, str], tuple[RemoteFinetune, ...]]

    def in_account(self, provider: str, account: str) -> tuple[RemoteFinetune, ...]:
        return self.finetunes.get((provider, account), ())


@dataclass(frozen=True)
class LockedFinetune:
    name: str
    provider: str
    account: str
    id: str
    model: str
    assets: Mapping[str, AssetDigest]
    # the remote fields as last seen; None in locks written before they were recorded
    description: str | None = None
    public: bool | None = None
    # assets recorded by `import` from the local files, not seen uploaded: unconfirmed
    unverified: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Pending:
    """An operation apply was about to send when it last wrote the lock (the journal)."""

    op: str  # "create" or "upload"
    provider: str
    account: str
    asset: str | None = None


@dataclass(frozen=True)
class Recorded:
    """The lockfile's content."""

    finetunes: Mapping[str, LockedFinetune]
    endpoints: Mapping[str, str]
    pending: Mapping[str, Pending] = field(default_factory=dict)


EMPTY_RECORD = Recorded(finetunes={}, endpoints={})

# path -> digest of the local file's current content
Digests = Mapping[Path, AssetDigest]
