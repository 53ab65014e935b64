"""What the sandbox enforces, shared by its APIs (Cloudflare's file and finetune limits and
accounts, Cohere's dataset size); one record, so one `limits=` shrinks them all in tests."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from reconciler.sandbox.common.defaults import (
    ACCOUNT_ID_RE,
    MAX_ASSET_BYTES,
    MAX_FINETUNES_PER_ACCOUNT,
)


@dataclass(frozen=True)
class SandboxLimits:
    """What the sandbox enforces; defaults are the published numbers, tests shrink them."""

    max_asset_bytes: int = MAX_ASSET_BYTES
    max_finetunes_per_account: int = MAX_FINETUNES_PER_ACCOUNT
    # None: any well-formed account id exists. Otherwise only these do (others get 403).
    allowed_accounts: Collection[str] | None = None
    # Cohere: "a Dataset can be as large as 1.5GB" (docs.cohere.com/docs/datasets).
    max_dataset_bytes: int = 1_500_000_000

    def __post_init__(self) -> None:
        if (
            self.max_asset_bytes < 1
            or self.max_finetunes_per_account < 0
            or self.max_dataset_bytes < 1
        ):
            raise ValueError("sandbox limits must be positive")
        if self.allowed_accounts is not None:
            accounts = frozenset(self.allowed_accounts)
            bad = sorted(a for a in accounts if not ACCOUNT_ID_RE.fullmatch(a))
            if bad:
                raise ValueError(f"account ids must be 32 lowercase hex characters: {bad}")
            object.__setattr__(self, "allowed_accounts", accounts)

    def allows(self, account_id: str) -> bool:
        return self.allowed_accounts is None or account_id in self.allowed_accounts
