"""One piece of work per server of a fleet, run side by side, each server's result or failure
kept apart: an unreachable server fails its own work only, and the caller sees every outcome.

A failure is one of our errors (ReconcilerError: what the client raises for a server that is
down, refusing or answering nonsense). Anything else is a bug, not a server's fault: it is
raised, once every server's work has finished, so no work is left running behind it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from reconciler.base.errors import (
    AuthError,
    EndpointError,
    OutcomeUnknown,
    ProviderError,
    ReconcilerError,
)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

MAX_WORKERS = 16  # threads at once: each waits on the network, not the CPU
SHOWN_FAILURES = 5  # servers named in a combined message; the rest counted


@dataclass(frozen=True)
class Outcome(Generic[K, T]):
    key: K  # the server (its URL, or whatever the work was keyed by)
    value: T | None  # the work's result; None when it failed (or returned None)
    error: ReconcilerError | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Fanned(Generic[K, T]):
    outcomes: tuple[Outcome[K, T], ...]  # one per key, in the keys' order

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def values(self) -> dict[K, T]:
        """The result of each server whose work succeeded."""
        return {o.key: cast(T, o.value) for o in self.outcomes if o.ok}

    def errors(self) -> dict[K, ReconcilerError]:
        return {o.key: o.error for o in self.outcomes if o.error is not None}

    def raise_failures(self, what: str) -> None:
        """Raise one error naming every failed server, if any failed: OutcomeUnknown if any
        outcome is unknown (the caller must look before retrying), AuthError or EndpointError
        when every failure is one, else ProviderError. Each server's message is its own
        error's (they name their server already)."""
        errors = self.errors()
        if not errors:
            return
        kinds = {type(e) for e in errors.values()}
        failed = list(errors.values())
        lines = [str(e) for e in failed[:SHOWN_FAILURES]]
        if len(failed) > SHOWN_FAILURES:
            lines.append(f"and {len(failed) - SHOWN_FAILURES} more")
        message = (
            f"{what}: {len(failed)} of {len(self.outcomes)} servers failed:\n  "
            + "\n  ".join(lines)
        )
        if any(issubclass(k, OutcomeUnknown) for k in kinds):
            raise OutcomeUnknown(message)
        for common in (AuthError, EndpointError):
            if all(issubclass(k, common) for k in kinds):
                raise common(message)
        raise ProviderError(message)


def fan_out(
    keys: Sequence[K], work: Callable[[K], T], *, workers: int = MAX_WORKERS
) -> Fanned[K, T]:
    """Run work(key) for every key, at most `workers` at once; every outcome, in key order."""
    if len(set(keys)) != len(keys):
        raise ValueError("fan_out: each server once")
    if not keys:
        return Fanned(())
    with ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(keys))), thread_name_prefix="reconciler-vllm"
    ) as pool:
        futures = [pool.submit(_attempt, work, key) for key in keys]
        results = [f.result() for f in futures]  # _attempt raises nothing
    bug = next((b for _, b in results if b is not None), None)
    if bug is not None:
        raise bug
    return Fanned(tuple(outcome for outcome, _ in results))


def _attempt(work: Callable[[K], T], key: K) -> tuple[Outcome[K, T], BaseException | None]:
    """The outcome of one key's work, and what it raised that is not a server's failure."""
    started = time.monotonic()
    try:
        value = work(key)
    except ReconcilerError as exc:
        return Outcome(key, None, exc, time.monotonic() - started), None
    except Exception as exc:  # a bug: raised by fan_out once all work is done
        return Outcome(key, None, None, time.monotonic() - started), exc
    return Outcome(key, value, None, time.monotonic() - started), None
