"""Quotas per base model (Capabilities.quotas): what the plan would take past one is blocked,
naming what holds it. Pure, like plan.build: the count comes from what the account was seen to
hold (Observed) and the plan's own changes.

Fireworks serves at most three serverless adapters per base model in an account, and answers a
fourth load ResourceExhausted. Per (account, base), the plan counts:

- the finetunes the account holds whose field is the quota's value (`serve: serverless`);
- less those this plan unloads: deleted (pruned), replaced, or updated to serve elsewhere;
  not a version superseded by a new one of the same finetune, which is unloaded only once
  the new one is loaded and current (create before destroy);
- plus, in the plan's order, each change that makes one (a create, a new version, an update
  to that value). One that would go past the quota is blocked, with the deletes that were
  to follow it, and its reason names what holds the base.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from reconciler.base.model import Observed, RemoteFinetune
from reconciler.plan.changes import Action, Change
from reconciler.providers.base import Capabilities, Quota


def within_quotas(
    changes: Sequence[Change], observed: Observed, capabilities: Mapping[str, Capabilities]
) -> list[Change]:
    """The changes, with each one that would take a base past a quota blocked."""
    found = list(changes)
    for provider in sorted(capabilities):
        for quota in capabilities[provider].quotas:
            found = _held_to(found, provider, quota, observed)
    return found


def _held_to(
    changes: list[Change], provider: str, quota: Quota, observed: Observed
) -> list[Change]:
    blocked: dict[int, str] = {}
    for account in sorted({c.account for c in changes if c.provider == provider}):
        remotes = observed.in_account(provider, account)
        freed = _freed(changes, provider, account, quota, remotes)
        holders: dict[str, list[str]] = {}
        for r in sorted(remotes, key=lambda r: r.name):
            if r.fields.get(quota.field) == quota.value and r.id not in freed:
                holders.setdefault(r.model, []).append(r.name)
        for i, c in enumerate(changes):
            if c.provider != provider or c.account != account or not _adds(c, quota):
                continue
            assert c.desired is not None  # _adds says so
            base = c.desired.model
            held = holders.setdefault(base, [])
            if len(held) >= quota.most:
                blocked[i] = _reason(quota, base, account, held)
            else:
                held.append(f"{c.remote_name or c.name} (planned)")
    if not blocked:
        return changes
    return _blocking(changes, blocked)


def _adds(c: Change, quota: Quota) -> bool:
    """Whether carrying the change out makes one the quota counts."""
    if c.desired is None or c.desired.fields.get(quota.field) != quota.value:
        return False
    if c.action in (Action.CREATE, Action.REPLACE):
        return True
    return c.action is Action.UPDATE and any(
        f.field == quota.field and f.before != quota.value for f in c.fields
    )


def _freed(
    changes: list[Change],
    provider: str,
    account: str,
    quota: Quota,
    remotes: Sequence[RemoteFinetune],
) -> set[str]:
    """The ids of those the account holds that the plan unloads, and not only after a new
    version of the same finetune is loaded."""
    by_id = {r.id: r for r in remotes if r.fields.get(quota.field) == quota.value}
    adding: set[str] = set()  # finetunes with a change that makes one, so far in the order
    freed: set[str] = set()
    for c in changes:
        if c.provider != provider or c.account != account:
            continue
        gone = c.remote_id in by_id and (
            c.action in (Action.DELETE, Action.REPLACE)
            or (
                c.action is Action.UPDATE
                and any(f.field == quota.field and f.before == quota.value for f in c.fields)
            )
        )
        if gone and c.name not in adding and c.remote_id is not None:
            freed.add(c.remote_id)
        if _adds(c, quota):
            adding.add(c.name)
    return freed


def _reason(quota: Quota, base: str, account: str, held: list[str]) -> str:
    return (
        f"{quota.who} serves at most {quota.most} {quota.what} per base model in an "
        f"account, and {base} has {len(held)} in account {account} ({', '.join(held)}): "
        f"one more would be refused ({quota.refusal}). Nothing is sent: {quota.fix}"
    )


def _blocking(changes: list[Change], blocked: Mapping[int, str]) -> list[Change]:
    """Each blocked change blocked, and the deletes of its finetune that were to follow it
    (a superseded version is deleted only after the new one is current) left out."""
    found: list[Change] = []
    stopped: set[str] = set()
    for i, c in enumerate(changes):
        if i in blocked:
            found.append(replace(c, action=Action.BLOCKED, reason=blocked[i], steps=(), assets=()))
            stopped.add(c.name)
        elif c.name in stopped and c.action is Action.DELETE:
            continue
        else:
            found.append(c)
    return found
