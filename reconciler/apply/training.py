"""Waiting for asynchronous training to finish after an apply (apply --wait).

The wait ends for each finetune when it is ready, when its training failed, when it is gone,
or when its provider says its training will not finish by itself (a provider may answer
`stopped(remote)` with the reason: Cohere's paused or temporarily offline models), and for all
at the timeout. Every end but ready says what happened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.base.model import LockedFinetune, LockedVersion, Recorded, RemoteFinetune
from reconciler.plan.changes import Action, Plan
from reconciler.providers.base import Provider

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
    why: str = ""  # what happened, when not ok
    timed_out: bool = False  # still training when the wait gave up


def _end(provider: Provider, name: str, remote: RemoteFinetune | None) -> Finished | None:
    """How the wait for this finetune ends now, or None while it goes on."""
    if remote is None:
        return Finished(
            name, None, False, "it is gone from the account (deleted while it trained?)"
        )
    status = remote.status
    if remote.ready:
        return Finished(name, status, True)
    if remote.failed:
        return Finished(name, status, False, f"training failed ({status})")
    stopped = getattr(provider, "stopped", None)
    why = stopped(remote) if callable(stopped) else None
    if why:
        return Finished(name, status, False, f"{why} ({status})")
    return None


def _watched(
    plan: Plan, recorded: Recorded, providers: Mapping[str, Provider]
) -> dict[str, LockedFinetune | LockedVersion]:
    """What each change that (re)trained made: a version still a candidate (made current once
    trained), else the finetune's current record."""
    watched: dict[str, LockedFinetune | LockedVersion] = {}
    for c in plan.changes:
        if c.provider not in providers or not providers[c.provider].capabilities.trains_async:
            continue
        held = recorded.versions.get(c.name, {}).get(c.version or "")
        if held is not None and held.state == "candidate":
            watched[c.name] = held  # made, or switched to, and not yet current
        elif c.action in TRAINS and c.name in recorded.finetunes:
            watched[c.name] = recorded.finetunes[c.name]
    return watched


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
    """Poll each finetune this plan (re)trained until it is ready, failed, gone or stopped,
    reporting every status change as it is seen. Gives up after `timeout` seconds (not ok)."""
    watched = _watched(plan, recorded, providers)
    last: dict[str, str | None] = {}
    done: dict[str, Finished] = {}
    deadline = clock() + timeout
    while True:
        for name, entry in watched.items():
            if name in done:
                continue
            provider = providers[entry.provider]
            remote = provider.get_finetune(entry.account, entry.id)
            status = remote.status if remote else None
            if status != last.get(name, "") and status is not None:
                on_status(name, status)
            last[name] = status
            end = _end(provider, name, remote)
            if end is not None:
                done[name] = end
        if len(done) == len(watched):
            return [done[n] for n in watched]
        if clock() >= deadline:
            return [
                done.get(n)
                or Finished(n, last.get(n), False, f"still {last.get(n)} after {timeout:g}s", True)
                for n in watched
            ]
        sleep(interval)
