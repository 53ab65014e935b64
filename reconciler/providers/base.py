"""The provider seam. The plan asks a provider what it can do; it never tests a provider's name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from reconciler.base.model import AssetDigest, AssetFile, DesiredFinetune, RemoteFinetune

if TYPE_CHECKING:
    from reconciler.adapters.catalogue import CatalogueModel

# called with the bytes sent so far and the total, while an upload streams
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Quota:
    """At most `most` finetunes per base model in an account whose compared field `field` is
    `value` (Fireworks: three serverless adapters per base). The plan counts those the account
    holds, adds those it makes, takes off those it unloads, and blocks each one beyond,
    naming the others (plan/quotas.py)."""

    field: str
    value: str
    most: int
    what: str  # how messages name those counted: "serverless adapters"
    who: str  # whose quota it is: "Fireworks"
    refusal: str  # what the provider answers past it: "ResourceExhausted"
    fix: str  # what to do instead


@dataclass(frozen=True)
class Capabilities:
    can_update: bool  # fields of an existing finetune can change in place
    can_delete: bool
    can_replace_assets: bool  # an uploaded asset can be uploaded again with other content
    trains_async: bool  # a create or update starts training that finishes later
    can_rename: bool = False
    assets_before_create: bool = False  # assets are uploaded first and named in the create
    # top-level fields whose change needs a new finetune (delete, then create)
    replace_fields: frozenset[str] = frozenset()
    # the provider checks uploaded files before the finetune can be used (Fireworks'
    # validateUpload): a VALIDATE step follows a create's uploads
    validates_uploads: bool = False
    # serving is a step of its own after the files are in (Fireworks loads an adapter onto a
    # deployment): a SERVE step follows, before any check or promotion
    serves: bool = False
    quotas: tuple[Quota, ...] = ()  # counted at plan time, per base model and account


class Provider(Protocol):
    name: str
    capabilities: Capabilities
    endpoint: str  # what the lockfile records: "sandbox" or the base URL

    def list_finetunes(self, account: str) -> tuple[RemoteFinetune, ...]:
        """All finetunes of one account, in one logical read (following pages if the API pages)."""

    def create_finetune(
        self, desired: DesiredFinetune, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        """Create it; `assets` are those uploaded first (assets_before_create), by name."""

    def update_finetune(
        self, desired: DesiredFinetune, remote_id: str, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        """Change name, fields and assets in place (can_update)."""

    def delete_finetune(self, account: str, remote_id: str) -> None:
        """Delete it (can_delete); one already gone counts as deleted."""

    def get_finetune(self, account: str, remote_id: str) -> RemoteFinetune | None: ...

    def history(self, account: str, remote_id: str) -> History:
        """Events and training metrics, where the provider keeps them."""

    def upload_asset(
        self,
        account: str,
        finetune_id: str | None,
        asset: AssetFile,
        progress: Progress | None = None,
    ) -> AssetDigest:
        """Stream the file up; returns the digest of exactly the bytes that were sent."""

    def close(self) -> None: ...


@runtime_checkable
class KnowsContent(Protocol):
    """A provider that can say what files a finetune was made of (Fireworks: the digest marker
    in a model's description): `import` compares them with the local ones."""

    def stated_content(
        self, account: str, remote_id: str, assets: Mapping[str, AssetDigest]
    ) -> tuple[str, str] | None:
        """(the digest the finetune states for its files, the same digest of `assets`), to
        compare; None when the finetune states none (made elsewhere) or is gone."""


@runtime_checkable
class ServesCatalogue(Protocol):
    """A provider that serves its model catalogue as data (Cloudflare): the plan checks base
    models against it rather than against a bundled list."""

    endpoint: str

    def read_catalogue(self, account: str) -> Mapping[str, CatalogueModel]:
        """Every model the account can use, by name, in one logical read (all pages)."""


@dataclass(frozen=True)
class Event:
    status: str
    created_at: str


@dataclass(frozen=True)
class StepMetric:
    step: int
    created_at: str
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class History:
    events: tuple[Event, ...] = ()
    metrics: tuple[StepMetric, ...] = ()
