"""What apply reports while it runs and what it hands back, and the callables it is given.

In a module of their own so that the runner and the step handlers share them without importing
each other; `runner` re-exports them for its callers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.apply.checks import CheckResult
from reconciler.base.model import AssetDigest, AssetFile
from reconciler.plan.planner import Change


@dataclass(frozen=True)
class Outcome:
    name: str
    step: str  # e.g. "create", "upload adapter_config.json", "forget"
    ok: bool
    detail: str
    skipped: bool = False  # not started: the apply was stopped before this step


Report = Callable[[Outcome], None]


class Events(Protocol):
    """What apply tells whoever watches it while it runs, from its worker threads: the CLI
    draws progress from these; the library draws nothing. Each step ends with its Outcome."""

    def started(self, name: str, step: str, size: int | None) -> None:
        """A step begins; `size`: the bytes an upload will send."""

    def sent(self, name: str, step: str, done: int, total: int) -> None:
        """An upload has sent `done` of `total` bytes (from 0 again if it is retried)."""

    def stopping(self) -> bool:
        """Asked before each step: True once no new step may start (Ctrl-C). The steps in
        flight finish and are recorded; each finetune's next step is reported skipped."""


# the promotion gate: runs a change's checks against the version it made (as `test` does)
Gate = Callable[[Change], Sequence[CheckResult]]

# (finetune, asset, planned digest) -> the asset as a local file holding exactly those bytes
Stage = Callable[[str, AssetFile, "AssetDigest | None"], AssetFile]


@dataclass
class Result:
    outcomes: list[Outcome] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)  # what the gate ran

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok and not o.skipped]

    @property
    def not_started(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.skipped]
