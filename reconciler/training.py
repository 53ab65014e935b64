"""Waiting for asynchronous training to finish after an apply (apply --wait)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .changes import Action, Plan
from .model import Recorded
from .providers.base import Provider

TRAINS = {Action.CREATE, Action.UPDATE, Action.REPLACE}


def poll_interval(env: Mapping[str, str] = os.environ) -> float:
    """Seconds between status reads while waiting (RECONCILER_POLL_INTERVAL, default 5)."""
    try:
        return max(0.01, float(env.get("RECONCILER_POLL_INTERVAL", "5")))
    except ValueError:
        return 5.0


@dataclass(frozen=True)
class Finished:
    name: str
    status: str | None  # the last status seen; None when the finetune is gone
    ok: bool


def wait(
    plan: Plan,
    recorded: Recorded,
    providers: Mapping[str, Provider],
    on_status: Callable[[str, str], None],
    interval: float,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Finished]:
    """Poll each finetune this plan (re)trained until it is ready or failed, reporting every
    status change as it is seen. Gives up after `timeout` seconds (not ok)."""
    watched = {
        c.name: recorded.finetunes[c.name]
        for c in plan.changes
        if c.action in TRAINS
        and c.name in recorded.finetunes
        and providers[c.provider].capabilities.trains_async
    }
    last: dict[str, str | None] = {}
    done: dict[str, Finished] = {}
    deadline = clock() + timeout
    while True:
        for name, entry in watched.items():
            if name in done:
                continue
            remote = providers[entry.provider].get_finetune(entry.account, entry.id)
            status = remote.status if remote else None
            if status != last.get(name, "") and status is not None:
                on_status(name, status)
            last[name] = status
            if remote is None or remote.failed or remote.ready:
                done[name] = Finished(name, status, bool(remote and remote.ready))
        if len(done) == len(watched):
            return [done[n] for n in watched]
        if clock() >= deadline:
            return [done.get(n) or Finished(n, last.get(n), False) for n in watched]
        sleep(interval)
