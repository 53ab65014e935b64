"""The plan: per finetune, what must happen and why. build() is pure: no I/O, no clock.

Given the same Desired, Observed, Recorded and Digests it returns the same Plan, so every rule
below is tested without a network. apply.run carries a Plan out without re-diffing. The
records it returns live in changes.py and are re-exported here.

build() is the entry; the rules live by what they decide: single.py plans one finetune,
versioned.py a versioned one (keep.py its old versions), removal.py what the config no longer
declares, and steps.py orders the steps of them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from fnmatch import fnmatchcase

from reconciler.adapters.catalogue import Catalogue, base_problem, deprecation_note
from reconciler.adapters.preflight import Limits, quantized_hint
from reconciler.base.errors import PlanError
from reconciler.base.model import (
    Desired,
    DesiredFinetune,
    Digests,
    LockedFinetune,
    Observed,
    Recorded,
)
from reconciler.plan.changes import (
    SYMBOLS,
    Action,
    AssetChange,
    Change,
    Plan,
    Step,
    StepKind,
    select,
)
from reconciler.plan.quotas import within_quotas
from reconciler.plan.removal import pruned_leftovers, undeclared
from reconciler.plan.single import plan_one
from reconciler.plan.versioned import versioned
from reconciler.plan.versions import FIRST_BY_NAME, content_version, remote_name
from reconciler.providers.base import Capabilities

__all__ = [
    "SYMBOLS",
    "Action",
    "AssetChange",
    "Change",
    "Plan",
    "Step",
    "StepKind",
    "build",
    "select",
]


def build(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    digests: Digests,
    capabilities: Mapping[str, Capabilities],
    endpoints: Mapping[str, str],
    prune: bool = False,
    catalogues: Mapping[tuple[str, str], Catalogue] | None = None,
    today: str | None = None,
) -> Plan:
    """`catalogues`: each account's model catalogue, where its provider serves one; `today`
    (an ISO date) tells a past deprecation from a planned one."""
    check_endpoints(desired, recorded, endpoints)
    clashes = _name_clashes(desired, recorded, digests)
    changes: list[Change] = []
    for d in desired.finetunes:
        if d.name in clashes:  # one remote finetune for two of the config: nothing is sent
            changes.append(
                Change(d.name, d.provider, d.account, Action.BLOCKED, clashes[d.name], desired=d)
            )
            continue
        catalogue = (catalogues or {}).get((d.provider, d.account))
        changes.extend(
            _declared(d, desired, observed, recorded, digests, capabilities, today, catalogue)
        )
    changes.extend(undeclared(desired, recorded, capabilities, prune))
    changes.extend(pruned_leftovers(desired, recorded, observed, capabilities, prune))
    changes = within_quotas(changes, observed, capabilities)
    declared = {d.name for d in desired.finetunes}
    retired = sum(
        1
        for name in declared
        for v in recorded.versions.get(name, {}).values()
        if v.state == "retired"
    )
    changes.extend(_unmanaged(desired, observed, recorded, changes))
    seen = {(p, a, r.id) for (p, a), remotes in observed.finetunes.items() for r in remotes}
    going = {(c.provider, c.account, c.remote_id) for c in changes if c.action is Action.DELETE}
    leftovers = len((recorded.leftover_ids() & seen) - going)
    return Plan(
        changes=tuple(changes), endpoints=dict(endpoints), retired=retired, leftovers=leftovers
    )


def _name_clashes(desired: Desired, recorded: Recorded, digests: Digests) -> dict[str, str]:
    """Declared finetunes that would bear one remote name in one account (`bot`, versioned,
    at content c9087db1 and a literal `bot-c9087db1`), each with the reason naming both.
    Here, not in validate: the content version of an hf: or URL adapter is known only now."""
    owners: dict[tuple[str, str, str], tuple[str, str]] = {}
    found: dict[str, str] = {}
    for d in desired.finetunes:
        for remote, how in _remote_names(d, recorded, digests).items():
            first, first_how = owners.setdefault((d.provider, d.account, remote), (d.name, how))
            if first == d.name:
                continue
            reason = (
                f"{first} and {d.name} both take the name {remote} in {d.provider} account "
                f"{d.account} ({first_how}; {how}): one remote finetune cannot be two of the "
                "config. Nothing is sent for either: rename one of them"
            )
            found.setdefault(first, reason)
            found.setdefault(d.name, reason)
    return found


def _remote_names(d: DesiredFinetune, recorded: Recorded, digests: Digests) -> dict[str, str]:
    """The names `d` bears or will bear in its account, each with how it comes by it: its own;
    versioned, its content's version name and those of its recorded versions."""
    if not d.versioning or _first_by_name(d, recorded.finetunes.get(d.name), recorded):
        return {d.name: f"{d.name} is declared so"}
    names: dict[str, str] = {}
    local = {a.name: digests[a.path] for a in d.assets if a.path in digests}
    if len(local) == len(d.assets):
        version = content_version(d.fields, local)
        names[remote_name(d.name, version)] = f"{d.name}'s content version {version} names it so"
    current = recorded.finetunes.get(d.name)
    if current is not None and current.version and current.remote_name:
        names.setdefault(current.remote_name, f"{d.name}'s current version {current.version}")
    for v in sorted(recorded.versions.get(d.name, {}).values(), key=lambda v: v.version):
        names.setdefault(v.remote_name, f"{d.name}'s recorded version {v.version}")
    names.pop(d.name, None)  # a record from before versioning: the name it always had
    return names


def _declared(
    d: DesiredFinetune,
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    digests: Digests,
    capabilities: Mapping[str, Capabilities],
    today: str | None,
    catalogue: Catalogue | None,
) -> list[Change]:
    """A finetune the config declares: its own change first, then any of its versions'."""
    locked = recorded.finetunes.get(d.name)
    if locked is None and d.previous_name:
        locked = recorded.finetunes.get(d.previous_name)  # a rename, declared
    if locked is not None and (locked.provider, locked.account) != (d.provider, d.account):
        locked = None  # moved: the old one stays where it is, a new one is made
    pending = recorded.pending.get(d.name)
    caps = capabilities[d.provider]
    if _first_by_name(d, locked, recorded):
        # its first version bears its own name, planned as an unversioned finetune is
        one, more = plan_one(d, None, observed, digests, caps, pending), []
    elif d.versioning:
        found = versioned(
            d, locked, recorded.versions.get(d.name, {}), observed, digests, caps, pending
        )
        one, more = found[0], found[1:]
    else:
        one, more = plan_one(d, locked, observed, digests, caps, pending), []
    if catalogue is not None:
        one = _base_model(one, d, catalogue, desired.limits.get(d.provider), today)
    return [one, *more]


def _first_by_name(d: DesiredFinetune, locked: LockedFinetune | None, recorded: Recorded) -> bool:
    """Whether `d` is versioned FIRST_BY_NAME and has no version yet: its first is NAME."""
    return d.versioning == FIRST_BY_NAME and locked is None and not recorded.versions.get(d.name)


def _unmanaged(
    desired: Desired, observed: Observed, recorded: Recorded, changes: list[Change]
) -> list[Change]:
    """In a managed account but neither declared, recorded nor named by a change: reported,
    never touched."""
    declared = {d.name for d in desired.finetunes}
    known_ids = {f.id for f in recorded.finetunes.values()} | {
        v.id for versions in recorded.versions.values() for v in versions.values()
    }
    known_ids |= {key[2] for key in recorded.leftover_ids()}  # ours once, kept: not unmanaged
    known_ids |= {c.remote_id for c in changes if c.remote_id}  # a change already names it
    found: list[Change] = []
    for provider, accounts in desired.accounts.items():
        ignored = desired.ignore.get(provider, ())
        for account in accounts:
            for remote in sorted(observed.in_account(provider, account), key=lambda r: r.name):
                if any(fnmatchcase(remote.name, pattern) for pattern in ignored):
                    continue  # made by hand and meant to stay: the config says so
                if remote.name not in declared and remote.id not in known_ids:
                    found.append(
                        Change(
                            name=remote.name,
                            provider=provider,
                            account=account,
                            action=Action.UNMANAGED,
                            reason="in the account but not in the config: left untouched",
                            remote_id=remote.id,
                        )
                    )
    return found


def check_endpoints(desired: Desired, recorded: Recorded, endpoints: Mapping[str, str]) -> None:
    """Refuse a run whose endpoint is not the one the lockfile's records were made with; the
    session calls it before any request, so a sandbox lock never meets a real API."""
    for provider in sorted({d.provider for d in desired.finetunes} | set(recorded.endpoints)):
        was, now = recorded.endpoints.get(provider), endpoints.get(provider)
        if was and now and was != now:
            how = (
                " (here: add --sandbox)"
                if was == "sandbox"
                else " (here: drop --sandbox)"
                if now == "sandbox"
                else ""
            )
            raise PlanError(
                f"the lockfile's {provider} records were made against {was}, but this run talks "
                f"to {now}. Mixing them would confuse one with the other: use the endpoint the "
                f"lockfile was made with{how}, or move the lockfile aside to start afresh "
                "(if it is the same API at another address, a proxy: `reconciler rebind "
                f"{provider}` records this one after finding the lockfile's finetunes there)"
            )


def _base_model(
    change: Change,
    d: DesiredFinetune,
    catalogue: Catalogue,
    limits: Limits | None,
    today: str | None,
) -> Change:
    """The base model against the account's catalogue: a create on a base that takes no
    adapter is blocked before anything is sent; a deprecation is a warning on every plan."""
    notes = list(change.warnings)
    # a model the config changed is checked as a new one would be: a typo is a typo whether
    # the finetune exists or not, and is said before any "cannot be changed" of the provider
    moved = any(f.field == "model" for f in change.fields)
    if change.action in (Action.CREATE, Action.UPLOAD) or moved:
        declared = limits.declared_models if limits is not None else frozenset()
        provider = limits.provider if limits is not None else d.provider
        problem = base_problem(d.model, catalogue, declared, quantized_hint(d.model), provider)
        if problem is not None and (change.action is Action.CREATE or moved):
            kept = change.fields if moved else ()
            return replace(
                change, action=Action.BLOCKED, reason=problem, steps=(), fields=kept, assets=()
            )
        if problem is None and limits is not None and limits.lora_models.get(d.model) is None:
            notes.append(
                f"{limits.title} documents no adapter model_type for {d.model}, so the "
                "adapter's model_type could not be checked against it (any of "
                f"{', '.join(limits.supported_model_types)} is accepted)"
            )
    snapshot = limits.deprecations if limits is not None else {}
    title = limits.title if limits is not None else "the provider"
    note = deprecation_note(d.model, catalogue, today, snapshot, title)
    if note is not None:
        notes.append(note)
    return replace(change, warnings=tuple(notes)) if notes != list(change.warnings) else change
