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
class AssetSource:
    """Where a remote asset's bytes are (sources/ reads them): a Hub repo or an HTTPS URL."""

    kind: str  # a key of sources.SOURCES: "hf" or "url"
    location: str  # hf: the repo id (acme/support-lora); url: the URL
    revision: str | None = None  # hf: as declared: a commit, a tag or a branch
    subfolder: str | None = None  # hf: the folder of the repo the files are in
    sha256: str | None = None  # url: the digest declared for the file ("sha256:<hex>")


@dataclass(frozen=True)
class AssetFile:
    """A file to upload as one asset of a finetune: a local file, or one a source names."""

    name: str  # the remote file name, e.g. adapter_config.json, or "dataset"
    # the local file; for a remote source, a stand-in path that names it (the key of its
    # digest, shown in messages): <config dir>/hf:acme/support-lora@v1/adapter_model.safetensors
    path: Path
    kind: str | None = None  # what the provider calls it, e.g. a Cohere dataset type
    source: AssetSource | None = None  # None: the local file at `path`


@dataclass(frozen=True)
class AssetDigest:
    name: str
    size: int
    sha256: str  # "sha256:<64 hex>"
    remote_id: str | None = field(default=None, compare=False)  # e.g. a Cohere dataset id
    # where the content came from, for a remote source: "hf://REPO@COMMIT/PATH" or the URL.
    # Not part of equality: the same bytes from elsewhere are the same asset.
    source: str | None = field(default=None, compare=False)

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
    # The remote-visible fields as the plan compares them, shaped by the provider's config
    # (Cloudflare: model, description, public; Cohere: base_model, hyperparameters). Only what
    # is declared is compared: a remote default the config leaves unsaid is not a change.
    fields: Mapping[str, Any] = field(default_factory=dict)
    prevent_destroy: bool = False
    previous_name: str | None = None  # a rename: the name this finetune had before
    checks: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)  # smoke tests
    versioning: str | None = None  # "content": remote names NAME-<8 hex> (versions.py)
    keep: int | None = None  # versioned: delete versions beyond the N most recent (can_delete)


@dataclass(frozen=True)
class Desired:
    config_path: Path
    finetunes: tuple[DesiredFinetune, ...]
    # provider -> account ids the config manages (listed even when no finetune is left in them)
    accounts: Mapping[str, tuple[str, ...]]
    # provider -> its limits (preflight.Limits: published values with the config's overrides)
    limits: Mapping[str, Any] = field(default_factory=dict)
    # provider -> its providers.<name> block, interpolated: what a provider reads at connect
    # time beside the environment (a vLLM fleet's servers and store)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)
    prune: bool = False  # settings.prune: delete what was removed, where the provider can
    # provider -> names or globs of finetunes made by hand and meant to stay (providers.X.ignore)
    ignore: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # files to write after an apply that changed a current version (outputs:), as given
    outputs: tuple[str, ...] = ()
    # "file:line:col: warning: ..." lines: worth saying, never a reason to stop
    warnings: tuple[str, ...] = ()


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
    fields: Mapping[str, Any] = field(default_factory=dict)
    status: str | None = None  # for providers that train: e.g. STATUS_READY, STATUS_FAILED
    failed: bool = False  # its training failed: only a replacement helps
    ready: bool = True  # trained and serving (always, where nothing trains)
    # a fleet's finetune (vLLM): each server of the fleet -> whether it has it loaded
    placement: Mapping[str, bool] = field(default_factory=dict, compare=False)


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
    # the remote fields as last applied or seen, for drift; None when not recorded
    fields: Mapping[str, Any] | None = None
    prevent_destroy: bool = False
    # assets recorded by `import` from the local files, not seen uploaded: unconfirmed
    unverified: frozenset[str] = frozenset()
    # versioned: the current version's name at the provider and its content version
    remote_name: str | None = None
    version: str | None = None
    created_at: str | None = None  # when apply made it (ISO 8601, UTC), where recorded


@dataclass(frozen=True)
class LockedVersion:
    """A version of a versioned finetune other than its current one."""

    version: str
    remote_name: str
    provider: str
    account: str
    id: str
    model: str
    assets: Mapping[str, AssetDigest]
    fields: Mapping[str, Any] | None = None
    created_at: str | None = None
    # retired: was current once; candidate: made, not yet current (an apply cut short);
    # failed: its checks failed, so it never became current
    state: str = "retired"
    prevent_destroy: bool = False


@dataclass(frozen=True)
class Pending:
    """An operation apply was about to send when it last wrote the lock (the journal)."""

    op: str  # "create", "upload", "update" or "delete"
    provider: str
    account: str
    asset: str | None = None
    # when it was journaled (UTC, ISO 8601): a finetune created before it is not this apply's
    since: str | None = None
    # assets uploaded for the operation, not yet in the finetune's entry (a Cohere dataset
    # uploaded ahead of its create): the next apply reuses them instead of uploading again
    assets: Mapping[str, AssetDigest] = field(default_factory=dict)
    sha256: str | None = None  # an upload: the content being sent (to know it again)


@dataclass(frozen=True)
class Leftover:
    """A remote finetune reconciler made and stopped managing without deleting it (removed from
    the config where the provider cannot delete, or without pruning): still ours, so drift
    and plan do not call it unmanaged, and `list` shows it as a leftover."""

    name: str  # the finetune's name in the config when it was forgotten
    remote_name: str  # its name in the account (a versioned one's NAME-<version>)
    provider: str
    account: str
    id: str
    model: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.account, self.id)


@dataclass(frozen=True)
class Recorded:
    """The lockfile's content."""

    finetunes: Mapping[str, LockedFinetune]
    endpoints: Mapping[str, str]
    pending: Mapping[str, Pending] = field(default_factory=dict)
    # versioned finetunes: logical name -> version -> every version but the current one
    versions: Mapping[str, Mapping[str, LockedVersion]] = field(default_factory=dict)
    leftovers: tuple[Leftover, ...] = ()

    def leftover_ids(self) -> frozenset[tuple[str, str, str]]:
        """(provider, account, id) of every leftover."""
        return frozenset(left.key for left in self.leftovers)


EMPTY_RECORD = Recorded(finetunes={}, endpoints={})

# path -> digest of the local file's current content
Digests = Mapping[Path, AssetDigest]
