"""What the sandbox enforces, shared by its APIs (Cloudflare's file and finetune limits,
Cohere's dataset size); one record, so one `limits=` shrinks them all in tests. (The accounts
Cloudflare serves are `SandboxServer(accounts=...)`, cloudflare/accounts.py.)"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.sandbox.common.defaults import MAX_ASSET_BYTES, MAX_FINETUNES_PER_ACCOUNT


@dataclass(frozen=True)
class SandboxLimits:
    """What the sandbox enforces; defaults are the published numbers, tests shrink them."""

    max_asset_bytes: int = MAX_ASSET_BYTES
    max_finetunes_per_account: int = MAX_FINETUNES_PER_ACCOUNT
    # Cohere: "a Dataset can be as large as 1.5GB" (docs.cohere.com/docs/datasets).
    max_dataset_bytes: int = 1_500_000_000

    def __post_init__(self) -> None:
        if (
            self.max_asset_bytes < 1
            or self.max_finetunes_per_account < 0
            or self.max_dataset_bytes < 1
        ):
            raise ValueError("sandbox limits must be positive")
