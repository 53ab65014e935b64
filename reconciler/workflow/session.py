"""The library calls behind the commands: load everything, read remote state, plan; apply.

The CLI calls one function here per command and renders what it returns; nothing here knows
about click or terminals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from reconciler import sources
from reconciler.adapters import assets
from reconciler.adapters.catalogue import Catalogue, base_problem, deprecation_note
from reconciler.adapters.preflight import check_account_capacity
from reconciler.apply import checks
from reconciler.apply import runner as apply_mod
from reconciler.base.errors import OutputsError, PlanError, ReconcilerError
from reconciler.base.model import (
    AssetDigest,
    Desired,
    DesiredFinetune,
    Digests,
    LockedFinetune,
    LockedVersion,
    Observed,
    Recorded,
    RemoteFinetune,
)
from reconciler.base.untrusted import visible
from reconciler.plan import drift
from reconciler.plan import planner as plan_mod
from reconciler.plan.versions import FIRST_BY_NAME, content_version, remote_name
from reconciler.project import Project
from reconciler.providers import catalogues, registry
from reconciler.providers.base import History, KnowsContent, Provider
from reconciler.providers.spec import Setting
from reconciler.state import lockfile, outputs, planfile
from reconciler.state.statcache import StatCache


@dataclass(frozen=True)
class Planned:
    project: Project
    desired: Desired
    recorded: Recorded
    observed: Observed
    digests: Digests
    plan: plan_mod.Plan
    fingerprints: planfile.Fingerprints
    # the resolved remote sources (hf:, files:): apply fetches and verifies their files
    fetcher: sources.Fetcher | None = None
    # the outputs: files apply would write as the lockfile now stands: (path, why)
    outputs_due: tuple[tuple[str, str], ...] = ()

    @property
    def config_path(self) -> Path:
        return self.project.config

    @property
    def lock_path(self) -> Path:
        return self.project.lockfile


@dataclass(frozen=True)
class Opened:
    """One command's inputs, each made once: the project's places, the environment, the
    config as parsed, the stat cache as opened, and the providers the config uses."""

    project: Project
    env: Mapping[str, str]
    desired: Desired
    cache: StatCache
    providers: Mapping[str, Provider]


@contextmanager
def opened(project: Project, env: Mapping[str, str], label: str | None) -> Iterator[Opened]:
    """Parse and check the config, then open its providers: bad input fails before any
    credential is looked at or any call is made. The stat cache is opened once, here, and
    saved when the command ends (what the adapter checks read, so the next command reads no
    byte of an unchanged adapter)."""
    cache = open_cache(project)
    try:
        desired = registry.load_config(project.config, env, cache)
        with open_providers(project, env, label, desired) as providers:
            yield Opened(project, env, desired, cache, providers)
    finally:
        cache.save()


def open_cache(project: Project) -> StatCache:
    """The stat cache, in the project's state folder; a state folder that is a symlink is
    refused here, where every command with a config passes, rather than half followed (read
    through, written never): what is in it is the project's own and stays beside the config."""
    if project.state_dir.is_symlink():
        raise ReconcilerError(
            f"{project.state_dir} is a symlink; reconciler keeps its local state (caches, "
            "downloads, the sandbox's data) in a real folder beside the config and follows no "
            "link there: remove the link (a plain folder is made again as needed)"
        )
    return StatCache.open(project.statcache, root=project.root)


def validate(where: Project | Path, env: Mapping[str, str]) -> Desired:
    """Parse and check the config and its files; no network. Raises ConfigError. (For bench/:
    commands parse it in `opened`.)"""
    project = Project.of(where)
    cache = open_cache(project)
    try:
        return registry.load_config(project.config, env, cache)
    finally:
        cache.save()


@contextmanager
def open_providers(
    where: Project | Path, env: Mapping[str, str], label: str | None, desired: Desired | None = None
) -> Iterator[dict[str, Provider]]:
    """The providers the config uses (`desired`: the config as parsed; parsed here if not)."""
    project = Project.of(where)
    desired = desired or registry.load_config(project.config, env)
    opened: dict[str, Provider] = {}
    try:
        for name in sorted(desired.accounts):
            setting = Setting(desired.settings.get(name, {}), project.root)
            opened[name] = registry.build(name, env, label, setting)
        yield opened
    finally:
        for provider in opened.values():
            provider.close()


def read_observed(
    accounts: Mapping[str, tuple[str, ...]], providers: Mapping[str, Provider]
) -> Observed:
    """One list read per (provider, account): never a call per finetune."""
    return Observed(
        finetunes={
            (name, account): providers[name].list_finetunes(account)
            for name, account_ids in accounts.items()
            for account in account_ids
        }
    )


def observe_all(
    desired: Desired, recorded: Recorded, providers: Mapping[str, Provider]
) -> Observed:
    """Every account the config or the lockfile names (of a provider that is open), listed
    once: what drift and `list` compare against."""
    _same_endpoints(desired, recorded, providers)
    accounts: dict[str, set[str]] = {p: set(a) for p, a in desired.accounts.items()}
    for f in recorded.finetunes.values():
        if f.provider in providers:
            accounts.setdefault(f.provider, set()).add(f.account)
    return read_observed({p: tuple(sorted(a)) for p, a in accounts.items()}, providers)


def _same_endpoints(
    desired: Desired, recorded: Recorded, providers: Mapping[str, Provider]
) -> None:
    """Said before any request: a lockfile made against the sandbox (or another base URL)
    would otherwise first meet the real API, and its retries, then the refusal."""
    plan_mod.check_endpoints(desired, recorded, {n: p.endpoint for n, p in providers.items()})


def make_plan(
    where: Project | Path,
    env: Mapping[str, str],
    providers: Mapping[str, Provider],
    targets: tuple[str, ...] = (),
    prune: bool = False,
    desired: Desired | None = None,
    refresh_catalogue: bool = False,
    *,
    cache: StatCache | None = None,
) -> Planned:
    """`desired` and `cache`: the config and the stat cache as `opened` made them, so a plan
    parses the one and opens the other once (a config path instead of a Project, or no
    cache: opened here, for callers that do not pass them yet).
    `refresh_catalogue`: read each account's model catalogue even if the cached copy is fresh."""
    project = Project.of(where)
    cache = open_cache(project) if cache is None else cache  # (an empty cache is falsy)
    desired = desired or registry.load_config(project.config, env, cache)
    # Hashing (all cores) goes on while the lockfile is read and the accounts are listed.
    hashing = assets.start_digest_all((a for d in desired.finetunes for a in d.assets), cache)
    try:
        recorded = lockfile.read_lock(project.lockfile, cache)
        _same_endpoints(desired, recorded, providers)
        found, notes = _catalogues(project, env, desired, providers, refresh_catalogue)
        observed = read_observed(desired.accounts, providers)
        # remote adapters (hf:, files:): digests from metadata, checks from headers
        resolution = sources.resolve_all(
            desired, sources.Context(env, project), registry.remote_checks(desired.settings)
        )
    except BaseException:
        wait([hashing])  # no hashing thread outlives the plan; this error is the one to tell
        raise
    digests = {**hashing.result(), **resolution.digests}
    cache.save()  # what read_lock recorded, if digest_all saved before it did
    endpoints = {n: p.endpoint for n, p in providers.items()}
    plan = plan_mod.build(
        desired,
        observed,
        recorded,
        digests,
        capabilities={n: p.capabilities for n, p in providers.items()},
        endpoints=endpoints,
        prune=prune,
        catalogues=found,
        today=date.today().isoformat(),
    )
    warnings = (*notes, *resolution.warnings, *_check_capacity(desired, observed, plan))
    if warnings:
        plan = replace(plan, warnings=(*plan.warnings, *warnings))
    return Planned(
        project=project,
        desired=desired,
        recorded=recorded,
        observed=observed,
        digests=digests,
        plan=plan_mod.select(plan, targets),
        fingerprints=planfile.fingerprint(
            desired, recorded, digests, observed, endpoints, resolution.pins
        ),
        fetcher=resolution.fetcher,
        outputs_due=tuple(outputs.due(project.root, desired.outputs, recorded)),
    )


def _catalogues(
    project: Project,
    env: Mapping[str, str],
    desired: Desired,
    providers: Mapping[str, Provider],
    refresh: bool,
) -> tuple[dict[catalogues.Key, Catalogue], tuple[str, ...]]:
    return catalogues.read_cached(
        desired,
        providers,
        project.catalogue,
        refresh=refresh,
        ttl=catalogues.checked_ttl(env),
        root=project.root,
    )


def _check_capacity(desired: Desired, observed: Observed, plan: plan_mod.Plan) -> tuple[str, ...]:
    """Refuse a plan that would take an account past its finetune limit, before any call;
    every finetune in the account counts (every version of a versioned one too). Returns a
    warning for each account the plan leaves at 80 % of its limit or more."""
    creates: dict[tuple[str, str], int] = {}
    for c in plan.changes:
        if c.action is plan_mod.Action.CREATE:
            creates[(c.provider, c.account)] = creates.get((c.provider, c.account), 0) + 1
    notes = []
    for provider, accounts in sorted(desired.accounts.items()):
        limits = desired.limits.get(provider)
        if limits is None:
            continue
        for account in accounts:
            count = creates.get((provider, account), 0)
            existing = len(observed.in_account(provider, account))
            problem = check_account_capacity(account, existing, count, limits)
            if problem:
                raise PlanError(problem)
            cap = limits.max_finetunes_per_account
            if existing + count >= 0.8 * cap:
                notes.append(
                    f"{provider} account {account} will hold {existing + count} of its "
                    f"{cap} finetunes ({(existing + count) * 100 // cap} %): every version "
                    "counts, and Cloudflare cannot delete one; plan for another account"
                )
    return tuple(notes)


def apply(
    planned: Planned,
    providers: Mapping[str, Provider],
    report: apply_mod.Report | None = None,
    parallelism: int = 4,
    skip_checks: bool = False,
    events: apply_mod.Events | None = None,
    wrote: Callable[[list[Path]], None] | None = None,
) -> apply_mod.Result:
    """Carry the plan out. A versioned change with checks becomes current only when its checks
    pass against the version it made (the promotion gate), unless `skip_checks`. Afterwards the
    config's `outputs:` files are written where what is current changed (`wrote` is told
    which, for the command to say)."""
    writer = lockfile.LockWriter(planned.lock_path, planned.recorded)
    gate = None if skip_checks else _gate(providers)
    result = apply_mod.run(
        planned.plan,
        providers,
        writer,
        report,
        parallelism,
        gate,
        events=events,
        stage=planned.fetcher.stage if planned.fetcher else None,
    )
    written = write_outputs(planned, writer.current)
    if wrote is not None and written:
        wrote(written)
    return result


def write_outputs(planned: Planned, recorded: Recorded | None = None) -> list[Path]:
    """The config's outputs: files, from the lockfile as it now is (those whose content
    would not change are left alone). Returns those written, for the command to say."""
    if not planned.desired.outputs:
        return []
    try:
        return outputs.write(
            planned.project.root, planned.desired.outputs, recorded or planned.recorded
        )
    except OSError as exc:
        raise OutputsError(
            "the apply is recorded in the lockfile, but an outputs: file could not be "
            f"written ({exc.strerror or exc}: {exc.filename}); fix the path and run "
            "`reconciler apply` again: it writes the files even when nothing else changes"
        ) from None
    except OutputsError as exc:  # names that one .env line name would stand for
        raise OutputsError(
            f"the apply is recorded in the lockfile, but the outputs: files were not written: {exc}"
        ) from None


def _gate(providers: Mapping[str, Provider]) -> apply_mod.Gate:
    def run_checks(change: plan_mod.Change) -> list[checks.CheckResult]:
        assert change.desired is not None  # its name is the version's name at the provider
        return checks.run([change.desired], lambda name: providers[name].run)  # type: ignore[attr-defined]

    return run_checks


def use_saved(path: Path, saved: planfile.Saved, now: Planned, pruning: bool = False) -> Planned:
    """`now`, planned afresh from the current inputs (every finetune), narrowed to what the
    saved plan covers, if it equals the saved plan exactly: what is applied is always a plan
    of the current inputs, never the file's text. Refuses naming each input that moved since
    the plan was made (stale), or else each difference (the file was edited)."""
    planfile.check_config(path, saved.config_path, now.config_path)
    planfile.check_fresh(path, saved.fingerprints, now.fingerprints)
    fresh = planfile.matching(path, saved, now.plan, now.config_path, pruning)
    return replace(now, plan=fresh)


def detect_drift(
    where: Project | Path,
    env: Mapping[str, str],
    providers: Mapping[str, Provider],
    desired: Desired | None = None,
) -> tuple[drift.Drift, ...]:
    """`desired`: the config as `opened` parsed it (parsed here if not given)."""
    project = Project.of(where)
    desired = desired or registry.load_config(project.config, env)
    recorded = lockfile.read_lock(project.lockfile)
    observed = observe_all(desired, recorded, providers)
    names = frozenset(d.name for d in desired.finetunes)
    return drift.detect(recorded, observed, desired.accounts, desired.ignore, names)


@dataclass(frozen=True)
class Imported:
    """What `import` recorded, and whether its assets were recorded as verified."""

    entry: LockedFinetune
    verified: bool  # --confirm, or the provider states the local files' digest (KnowsContent)
    note: str | None = None  # what the provider said of the finetune's content, if anything

    @property
    def assets_state(self) -> str:
        """How the assets were recorded, for `Imported NAME ...; assets <this>.`"""
        said = f": {self.note}" if self.note else ""
        if self.verified:
            return f"verified{said}"
        confirm = f"confirm with `reconciler import {self.entry.name} --confirm`"
        return f"unverified{said}; {confirm}" if said else f"unverified: {confirm}"


def import_finetune(s: Opened, name: str, confirm: bool) -> Imported:
    """Adopt a finetune that exists remotely into the lockfile.

    Cloudflare cannot say what was uploaded, so the local files' digests are recorded as
    unverified, unless the user confirms (`--confirm`) that they are what was uploaded. A
    provider that states the digest of a finetune's files (KnowsContent: Fireworks' digest
    marker) settles it: the same digest as the local files' is verified, another is refused.
    """
    declared = next((d for d in s.desired.finetunes if d.name == name), None)
    if declared is None:
        raise PlanError(f"{name} is not declared in {s.project.config}: add it to the config first")
    lock_path = s.project.lockfile
    recorded = lockfile.read_lock(lock_path)
    provider = s.providers[declared.provider]
    was = recorded.endpoints.get(declared.provider)
    if was and was != provider.endpoint:
        raise PlanError(
            f"the lockfile's {declared.provider} records were made against {was}, not "
            f"{provider.endpoint}"
        )
    existing = recorded.finetunes.get(name)
    digests = {**assets.digest_all(declared.assets, s.cache), **_remote_digests(s, declared)}
    local = {a.name: digests[a.path] for a in declared.assets}
    wanted = name
    versioned = bool(declared.versioning) and not _first_named(declared, existing, provider, local)
    if versioned:  # the version the local files make, by its content-addressed name
        version = content_version(declared.fields, local)
        wanted = remote_name(name, version)
        if existing is not None and existing.remote_name != wanted:
            entry = _import_version(lock_path, recorded, provider, declared, wanted, version, local)
            return Imported(entry, *_content(provider, declared, entry.id, local, confirm=False))
    if existing is not None and not (confirm and existing.unverified):
        raise PlanError(
            f"{name} is already in the lockfile (id {existing.id}); to record it again, "
            f"`reconciler forget {name}` first"
        )
    named = [r for r in provider.list_finetunes(declared.account) if r.name == wanted]
    if not named:
        raise PlanError(
            f"no finetune named {wanted} in {declared.provider} account {declared.account}: "
            "nothing to import (plan and apply create it)"
        )
    if len(named) > 1:  # which one is ours is not for reconciler to guess
        ids = ", ".join(visible(r.id) for r in sorted(named, key=lambda r: r.id))
        raise PlanError(
            f"{len(named)} finetunes named {name} in {declared.provider} account "
            f"{declared.account} (ids {ids}); reconciler cannot tell which one the config "
            "means, so none was imported: remove or rename the others in the account first"
        )
    remote = named[0]
    verified, note = _content(provider, declared, remote.id, local, confirm)
    entry = LockedFinetune(
        name=name,
        provider=declared.provider,
        account=declared.account,
        id=remote.id,
        model=remote.model,
        assets={a.name: digests[a.path] for a in declared.assets},
        fields=dict(remote.fields),
        prevent_destroy=declared.prevent_destroy,
        unverified=frozenset() if verified else frozenset(a.name for a in declared.assets),
        remote_name=wanted if versioned else None,
        version=content_version(declared.fields, local) if versioned else None,
    )
    writer = lockfile.LockWriter(lock_path, recorded)
    writer.put(entry, provider.endpoint)
    return Imported(entry, verified, note)


def _content(
    provider: Provider,
    declared: DesiredFinetune,
    remote_id: str,
    local: Mapping[str, AssetDigest],
    confirm: bool,
) -> tuple[bool, str | None]:
    """Whether the local files are recorded as verified, and what the provider said of the
    finetune's content. One that states other content than the local files' is refused
    (PlanError), --confirm or not: the provider's own record says they differ."""
    if not isinstance(provider, KnowsContent):
        return confirm, None
    stated = provider.stated_content(declared.account, remote_id, local)
    where = f"{declared.provider} finetune {visible(remote_id)}"
    if stated is None:
        return confirm, (
            f"{where} states no digest of its files (made outside reconciler?), so they "
            "could not be compared with the local ones"
        )
    theirs, ours = (visible(d) for d in stated)
    if stated[0] != stated[1]:
        raise PlanError(
            f"{where} was made of other files than {declared.name}'s local ones: it states "
            f"the digest {theirs}, the local files make {ours}. Nothing was imported: point "
            "the adapter at the files it was made of, or give this finetune another name "
            "(apply then makes a model of its own)"
        )
    return True, f"{where} states the local files' digest ({ours})"


def _first_named(
    declared: DesiredFinetune,
    existing: LockedFinetune | None,
    provider: Provider,
    local: Mapping[str, AssetDigest],
) -> bool:
    """A finetune versioned FIRST_BY_NAME whose first model (its bare name) is in the account
    and no model of its local content's version name is, or whose record is that model's
    (imported again with --confirm): imported under its own name, as an unversioned record
    (the plan reckons its version from what is recorded)."""
    if declared.versioning != FIRST_BY_NAME:
        return False
    if existing is not None:
        return not existing.version
    names = {r.name for r in provider.list_finetunes(declared.account)}
    version = remote_name(declared.name, content_version(declared.fields, local))
    return declared.name in names and version not in names


def _import_version(
    lock_path: Path,
    recorded: Recorded,
    provider: Provider,
    declared: DesiredFinetune,
    wanted: str,
    version: str,
    local: Mapping[str, AssetDigest],
) -> LockedFinetune:
    """A versioned finetune whose local content has a version the lock lacks, found in the
    account by its content-addressed name: recorded as a candidate, which the next apply
    checks (where checks are declared) and makes current."""
    named = [r for r in provider.list_finetunes(declared.account) if r.name == wanted]
    if len(named) != 1:
        raise PlanError(
            f"{len(named) or 'no'} finetune{'s' if len(named) != 1 else ''} named {wanted} in "
            f"{declared.provider} account {declared.account}: nothing was imported"
        )
    remote = named[0]
    candidate = LockedVersion(
        version=version,
        remote_name=wanted,
        provider=declared.provider,
        account=declared.account,
        id=remote.id,
        model=remote.model,
        assets=dict(local),
        fields=dict(remote.fields),
        created_at=remote.created_at,
        state="candidate",
        prevent_destroy=declared.prevent_destroy,
    )
    writer = lockfile.LockWriter(lock_path, recorded)
    writer.add_version(declared.name, candidate, provider.endpoint)
    current = writer.current.finetunes[declared.name]
    return replace(current, id=remote.id, remote_name=wanted, version=version)


def _remote_digests(s: Opened, declared: DesiredFinetune) -> Mapping[Path, AssetDigest]:
    """The digests of a finetune's remote adapter (hf:, files:), from metadata, as plan has them."""
    if all(a.source is None for a in declared.assets):
        return {}
    one = replace(s.desired, finetunes=(declared,))
    return sources.resolve_all(one, sources.Context(s.env, s.project)).digests


def rebind_endpoint(s: Opened, provider: str) -> tuple[str | None, str, int]:
    """Record this run's endpoint for `provider` in the lockfile: the same API at another
    address (a proxy, a new base URL). Every finetune the lockfile records there must be
    found at the new endpoint first, so another API (or account) is never taken for it.
    Returns the endpoint it was, the one it is now, and how many finetunes were found."""
    if provider not in s.providers:
        raise PlanError(f"{provider} is not a provider {s.project.config} uses")
    lock_path = s.project.lockfile
    recorded = lockfile.read_lock(lock_path)
    now = s.providers[provider].endpoint
    entries = [
        (f.remote_name or f.name, f.account, f.id, f.provider) for f in recorded.finetunes.values()
    ]
    entries += [
        (v.remote_name, v.account, v.id, v.provider)
        for vs in recorded.versions.values()
        for v in vs.values()
    ]
    ours = [(name, account, id_) for name, account, id_, p in entries if p == provider and id_]
    found = {
        (account, f.id)
        for account in sorted({account for _, account, _ in ours})
        for f in s.providers[provider].list_finetunes(account)
    }
    missing = [name for name, account, id_ in ours if (account, id_) not in found]
    if missing:
        raise PlanError(
            f"{', '.join(visible(m) for m in missing)} of the lockfile not found at {now}: "
            "it does not look like the API the lockfile was made against; nothing was changed"
        )
    lockfile.save(lock_path, replace(recorded, endpoints={**recorded.endpoints, provider: now}))
    return recorded.endpoints.get(provider), now, len(ours)


def forget_finetune(
    project: Project, env: Mapping[str, str], name: str
) -> tuple[LockedFinetune, bool]:
    """Drop a finetune from the lockfile; the remote one is untouched. Returns it, and whether
    the config still declares it (the next plan would then report it as blocked)."""
    lock_path = project.lockfile
    recorded = lockfile.read_lock(lock_path)
    entry = recorded.finetunes.get(name)
    versions = recorded.versions.get(name, {})
    if entry is None and versions:
        # a versioned finetune with no current version (its first one failed its checks)
        v = sorted(versions.values(), key=lambda v: v.version)[0]
        entry = LockedFinetune(
            name, v.provider, v.account, v.id, v.model, v.assets, remote_name=v.remote_name
        )
    left = [x for x in recorded.leftovers if x.name == name]
    if entry is None and left:  # forgotten by an apply, kept as ours: now let go of
        ids = ", ".join(x.id for x in left)
        entry = LockedFinetune(name, left[0].provider, left[0].account, ids, left[0].model, {})
    if entry is None:
        raise PlanError(f"{name} is not in {lock_path}: nothing to forget")
    writer = lockfile.LockWriter(lock_path, recorded)
    writer.forget(name)
    if left:
        writer.forget_leftovers(name)
    try:
        declared = any(d.name == name for d in registry.load_config(project.config, env).finetunes)
    except ReconcilerError:  # forgetting needs no valid config; the warning is a courtesy
        declared = name in _names_as_written(project.config)
    return entry, declared


def _names_as_written(config: Path) -> set[str]:
    """The finetune names a config that does not load names (an unset account variable
    after --sandbox runs, a typo elsewhere): read as written, bounded as the loader reads."""
    from reconciler.config.loader import MAX_CONFIG_BYTES
    from reconciler.config.yamlsource import parse, read_text

    try:
        text, _ = read_text(config, str(config), MAX_CONFIG_BYTES)
    except ReconcilerError:
        return set()
    source, _ = parse(text, str(config))
    data = source.data if source is not None else None
    items = data.get("finetunes") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return set()
    return {i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)}


def describe(s: Opened, name: str) -> tuple[LockedFinetune | None, RemoteFinetune | None, History]:
    """One finetune's recorded state, remote state and history (events, training metrics)."""
    recorded = lockfile.read_lock(s.project.lockfile)
    locked = recorded.finetunes.get(name)
    declared = next((d for d in s.desired.finetunes if d.name == name), None)
    where = locked or declared
    if where is None:
        raise PlanError(
            f"{name} is neither in {s.project.config} nor in its lockfile; `reconciler list` "
            "shows what the accounts hold"
        )
    provider_name, account = where.provider, where.account
    provider = s.providers.get(provider_name)
    if provider is None:
        raise PlanError(f"{name}: its provider {provider_name} is not configured")
    if locked is not None:
        remote = provider.get_finetune(account, locked.id)
    else:
        remote = next((r for r in provider.list_finetunes(account) if r.name == name), None)
    history = provider.history(account, remote.id) if remote is not None else History()
    return locked, remote, history


def base_model_notes(
    s: Opened, names: tuple[str, ...] = (), refresh: bool = False
) -> tuple[str, ...]:
    """What the accounts' model catalogues say about the base models of the named finetunes
    (all when none are named): a base that takes no adapter, a planned deprecation, and any
    catalogue that could not be read. For the commands that use a finetune without planning
    it (`test`, `import`)."""
    desired = s.desired
    chosen = tuple(d for d in desired.finetunes if not names or d.name in names)
    one = replace(desired, finetunes=chosen)
    found, notes = _catalogues(s.project, s.env, one, s.providers, refresh)
    today = date.today().isoformat()
    out = list(notes)
    for d in chosen:
        catalogue = found.get((d.provider, d.account))
        if catalogue is None:
            continue
        limits = desired.limits.get(d.provider)
        declared: frozenset[str] = getattr(limits, "declared_models", frozenset())
        problem = base_problem(d.model, catalogue, declared, "")
        if problem is not None:
            out.append(f"{d.name}: {problem}")
        note = deprecation_note(d.model, catalogue, today, getattr(limits, "deprecations", {}))
        if note is not None:
            out.append(f"{d.name}: {note}")
    return tuple(out)


def as_called(
    finetunes: tuple[DesiredFinetune, ...], recorded: Recorded
) -> tuple[DesiredFinetune, ...]:
    """The finetunes under the names an app calls them by: a versioned one's current version
    (its remote name, from the lockfile), so checks run against what is current."""
    found = []
    for d in finetunes:
        entry = recorded.finetunes.get(d.name)
        if d.versioning and entry is not None and entry.remote_name:
            d = replace(d, name=entry.remote_name)
        found.append(d)
    return tuple(found)


def accept_remote(
    where: Project | Path,
    env: Mapping[str, str],
    providers: Mapping[str, Provider],
    desired: Desired | None = None,
) -> tuple[tuple[drift.Drift, ...], Callable[[], int]]:
    """`apply --refresh-only`: what changed remotely, and a function that records it in the
    lockfile (after the caller's confirmation), so that drift clears once a remote change is
    accepted. Fields changed remotely are recorded as the account now has them; a record whose
    finetune is gone is dropped (the next plan creates it again, or a new version); a name
    taken by another finetune and unmanaged finetunes are left for `import` or `ignore:`."""
    project = Project.of(where)
    found = detect_drift(project, env, providers, desired)
    lock_path = project.lockfile

    def record() -> int:
        recorded = lockfile.read_lock(lock_path)
        observed = read_observed(
            {
                p: tuple(sorted({d.account for d in found if d.provider == p}))
                for p in {d.provider for d in found}
            },
            providers,
        )
        writer = lockfile.LockWriter(lock_path, recorded)
        done = 0
        for item in found:
            name, _, version = item.name.partition("@")
            remote = next(
                (
                    r
                    for r in observed.in_account(item.provider, item.account)
                    if r.id == item.remote_id
                ),
                None,
            )
            if item.kind is drift.DriftKind.GONE:
                if version:
                    writer.forget_version(name, version)
                else:
                    writer.drop_current(name)  # its other versions are still there
                done += 1
            elif item.kind is drift.DriftKind.CHANGED and remote is not None:
                writer.accept_fields(name, version or None, dict(remote.fields))
                done += 1
        return done

    return found, record
