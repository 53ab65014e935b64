"""The provider seam. The plan asks a provider what it can do; it never tests a provider's name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..model import AssetDigest, AssetFile, DesiredFinetune, RemoteFinetune

# called with the bytes sent so far and the total, while an upload streams
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Capabilities:
    can_update: bool  # fields of an existing finetune can change in place
    can_delete: bool
    can_replace_assets: bool  # an uploaded asset can be uploaded again with other content
    trains_async: bool


class Provider(Protocol):
    name: str
    capabilities: Capabilities
    endpoint: str  # what the lockfile records: "sandbox" or the base URL

    def list_finetunes(self, account: str) -> tuple[RemoteFinetune, ...]:
        """All finetunes of one account, in one logical read (following pages if the API pages)."""

    def create_finetune(self, desired: DesiredFinetune) -> RemoteFinetune: ...

    def upload_asset(
        self, account: str, finetune_id: str, asset: AssetFile, progress: Progress | None = None
    ) -> AssetDigest:
        """Stream the file up; returns the digest of exactly the bytes that were sent."""

    def close(self) -> None: ...
