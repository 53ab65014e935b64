"""finetunes.lock: what was created and uploaded. Sorted, versioned, written atomically.

The lock is rewritten after every step of an apply, so an apply cut short leaves a lock from
which the next plan sees exactly the work that remains.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, replace
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from reconciler.base import crashpoints, strictjson
from reconciler.base.errors import LockfileError
from reconciler.base.model import (
    EMPTY_RECORD,
    AssetDigest,
    Leftover,
    LockedFinetune,
    LockedVersion,
    Pending,
    Recorded,
)
from reconciler.base.untrusted import visible
from reconciler.config import schema
from reconciler.plan.versions import names_version, remote_name, version_named
from reconciler.providers import registry
from reconciler.state.atomic import atomic_file
from reconciler.state.statcache import StatCache

FORMAT_VERSION = 1
SCHEMA_FACT = "schema-passed"  # in the stat cache: schema.token() of a lock found valid


MAX_LOCK_BYTES = 256 * 1024 * 1024  # 1,000 finetunes take about 700 kB
RESTORE = "restore it from version control, or correct it by hand"


def read_lock(path: Path, cache: StatCache | None = None) -> Recorded:
    """The recorded state; an absent lockfile is an empty record. With `cache`, a text found
    valid once is not checked against the schema again (~0.1 s for 1,000 finetunes).

    Refused (LockfileError), before anything is sent: what is not a regular file, text that is
    not strict JSON (a key twice, as a bad merge leaves; NaN), what the schema refuses, and
    what no apply writes: two finetunes with one remote id, an asset name or a provider
    reconciler does not know."""
    fence = cache.fence() if cache is not None else None  # before the lock is read
    try:
        st = path.stat()
        text = strictjson.read_bytes(path, MAX_LOCK_BYTES).decode("utf-8")
    except FileNotFoundError:
        return EMPTY_RECORD
    except strictjson.Refused as exc:
        raise LockfileError(f"{path}: {exc}, which no lockfile is; is it the right file?") from None
    except OSError as exc:
        raise LockfileError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise LockfileError(f"{path}: not UTF-8 text ({exc.reason}); it is corrupt") from None
    try:
        data = strictjson.loads(text)
    except json.JSONDecodeError as exc:
        raise LockfileError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); the lockfile is corrupt "
            "or truncated: restore it from version control"
        ) from None
    except strictjson.Refused as exc:
        raise LockfileError(
            f"{path}: {exc} (a merge that kept both sides?); {RESTORE}, then plan again"
        ) from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise LockfileError(
            f"{path}: format_version {version} was written by a newer reconciler "
            f"(this one reads {FORMAT_VERSION}); upgrade reconciler"
        )
    passed = schema.token("lock.schema.json", text)
    if cache is None or cache.get(path, st, SCHEMA_FACT) != passed:
        errors = sorted(
            schema.validator("lock.schema.json").iter_errors(data), key=lambda e: e.path
        )
        if errors:
            first = errors[0]
            where = schema.display_path(tuple(first.absolute_path))
            raise LockfileError(
                f"{path}: not a reconciler lockfile of format_version {FORMAT_VERSION} "
                f"({where}: {_short(first.message)}); restore it from version control"
            )
        if cache is not None:
            cache.put(path, st, SCHEMA_FACT, passed, fence)
    _check(path, data)
    return _from_json(data)


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


def asset_names(provider: str) -> frozenset[str] | None:
    """The assets a finetune of this provider has; None for a provider reconciler lacks."""
    if provider not in registry.SPECS:
        return None
    return frozenset(registry.required_assets(provider))


def _check(path: Path, data: dict[str, Any]) -> None:
    """What the schema cannot say: each entry names a known provider and its assets, and no
    remote finetune is recorded twice (`apply --prune` would delete it as the entry the config
    dropped, while the other entry still declares it)."""
    known = ", ".join(sorted(registry.SPECS))
    owners: dict[tuple[str, str], str] = {}
    for name, entry in sorted(data["finetunes"].items()):
        _check_record(path, f"finetunes.{name}", entry, known)
        _claim(path, owners, entry, name, _AS_ENTRY)
    for name, by_version in sorted(data.get("versions", {}).items()):
        for version, entry in sorted(by_version.items()):
            where = f"versions.{name}.{version}"
            _check_record(path, where, entry, known)
            _claim(path, owners, entry, where, _AS_VERSION)
    for i, left in enumerate(data.get("leftovers", [])):
        where = f"leftovers[{i}] ({left['remote_name']})"
        if asset_names(left["provider"]) is None:
            raise LockfileError(
                f"{path}: {where}: provider {left['provider']!r} is not one reconciler knows "
                f"({known}); {RESTORE}"
            )
        _claim(path, owners, left, where, _AS_LEFTOVER)
    for name, pending in sorted(data.get("pending", {}).items()):
        names = asset_names(pending["provider"])
        if names is None:
            raise LockfileError(
                f"{path}: pending.{name}: provider {pending['provider']!r} is not one "
                f"reconciler knows ({known}); {RESTORE}"
            )
        for asset in sorted({*pending.get("assets", {}), *filter(None, [pending.get("asset")])}):
            if asset not in names:
                raise LockfileError(
                    f"{path}: pending.{name} names an asset {asset!r}, but a "
                    f"{pending['provider']} finetune has only {', '.join(sorted(names))}; "
                    f"{RESTORE}"
                )
    _check_names(path, data)


def _check_names(path: Path, data: dict[str, Any]) -> None:
    """Each version is named as plan/versions names it, and no remote name has two records:
    else the plan, which finds a version by its name, says "new version bot-cd41c3d4
    supersedes bot-cd41c3d4" on every run and never converges. A version from before
    versioning was turned on keeps the finetune's own name, which the finetune may bear again
    once versioning is turned off (where the provider allows one name twice): it claims none."""
    owners: dict[tuple[str, str, str], str] = {}
    for name, entry in sorted(data["finetunes"].items()):
        where, remote = f"finetunes.{name}", entry.get("remote_name", name)
        if entry.get("version") is not None:
            _named(path, where, remote, name, entry["version"])
        elif remote != name and version_named(remote, name) is None:
            raise LockfileError(
                f"{path}: {where} records the remote name {remote!r} without a version, which "
                f"no apply writes: a finetune's remote name is {name} itself, or, versioned, "
                f"{name}-<8 hex> with the version it names; {RESTORE}"
            )
        _claim_name(path, owners, entry, remote, where)
    for name, by_version in sorted(data.get("versions", {}).items()):
        for version, entry in sorted(by_version.items()):
            where = f"versions.{name}.{version}"
            _named(path, where, entry["remote_name"], name, version)
            if entry["remote_name"] != name:  # a record from before versioning: see below
                _claim_name(path, owners, entry, entry["remote_name"], where)


def _named(path: Path, where: str, remote: str, name: str, version: str) -> None:
    if not names_version(remote, name, version):
        raise LockfileError(
            f"{path}: {where} records the remote name {remote!r}, but version {version} of "
            f"{name} is named {remote_name(name, version)} (a version's remote name is "
            f"NAME-VERSION, the content version it records); {RESTORE}"
        )


def _claim_name(
    path: Path,
    owners: dict[tuple[str, str, str], str],
    entry: dict[str, Any],
    remote: str,
    where: str,
) -> None:
    """Record `where` as the record of its remote name; a second one is a bad merge or an
    edit (an account holds one finetune of a name)."""
    key = (entry["provider"], entry["account"], remote)
    if key in owners:
        raise LockfileError(
            f"{path}: {owners[key]} and {where} both record the remote name {remote!r} "
            f"({entry['provider']} account {entry['account']}), but a remote finetune has one "
            "record (a bad merge?). Keep the record that is right and delete the other, or "
            "restore the lockfile from version control; nothing was changed"
        )
    owners[key] = where


# how a second record of one remote id is told: (the first's label, what a record is, the way out)
_AS_ENTRY = (
    "finetunes {}",
    "entry",
    "Keep the entry that is right and delete the other from the lockfile, or restore it "
    "from version control",
)
_AS_VERSION = (
    "{}",
    "version",
    "Keep the record that is right and delete the other, or restore the lockfile from "
    "version control",
)

_AS_LEFTOVER = (
    "{}",
    "record",
    "Keep the record that is right and delete the other, or restore it from version control",
)


def _claim(
    path: Path,
    owners: dict[tuple[str, str], str],
    entry: dict[str, Any],
    where: str,
    told: tuple[str, str, str],
) -> None:
    """Record `where` as the owner of its remote id; a second owner is a bad merge."""
    key = (entry["provider"], entry["id"])
    label, unit, way_out = told
    if key in owners:
        raise LockfileError(
            f"{path}: {owners[key]} and {where} both record the remote id "
            f"{entry['id']} ({entry['provider']}), but one remote finetune is one {unit} (a "
            f"bad merge?). {way_out}; nothing was changed"
        )
    owners[key] = label.format(where)


def _check_record(path: Path, where: str, entry: dict[str, Any], known: str) -> None:
    """A finetune's or a version's record names a provider reconciler knows, and only the
    assets a finetune of that provider has."""
    provider = entry["provider"]
    names = asset_names(provider)
    if names is None:
        raise LockfileError(
            f"{path}: {where}: provider {provider!r} is not one reconciler knows ({known}); "
            f"{RESTORE}"
        )
    for asset in sorted(entry["assets"]):
        if asset not in names:
            raise LockfileError(
                f"{path}: {where} records an asset named {asset!r}, but a {provider} "
                f"finetune has only {', '.join(sorted(names))}; {RESTORE}"
            )


def _assets_from_json(assets: dict[str, Any]) -> dict[str, AssetDigest]:
    return {
        file: AssetDigest(
            file, a["size"], a["sha256"], remote_id=a.get("id"), source=a.get("source")
        )
        for file, a in assets.items()
    }


def _from_json(data: dict[str, Any]) -> Recorded:
    finetunes = {
        name: LockedFinetune(
            name=name,
            provider=entry["provider"],
            account=entry["account"],
            id=entry["id"],
            model=entry["model"],
            assets=_assets_from_json(entry["assets"]),
            fields=entry.get("fields"),
            prevent_destroy=bool(entry.get("prevent_destroy", False)),
            unverified=frozenset(
                file for file, a in entry["assets"].items() if a.get("verified") is False
            ),
            remote_name=entry.get("remote_name"),
            version=entry.get("version"),
            created_at=entry.get("created_at"),
        )
        for name, entry in data["finetunes"].items()
    }
    versions = {
        name: {
            version: LockedVersion(
                version=version,
                remote_name=v["remote_name"],
                provider=v["provider"],
                account=v["account"],
                id=v["id"],
                model=v["model"],
                assets=_assets_from_json(v["assets"]),
                fields=v.get("fields"),
                created_at=v.get("created_at"),
                state=v["state"],
                prevent_destroy=bool(v.get("prevent_destroy", False)),
            )
            for version, v in by_version.items()
        }
        for name, by_version in data.get("versions", {}).items()
    }
    pending = {
        name: Pending(
            op=p["op"],
            provider=p["provider"],
            account=p["account"],
            asset=p.get("asset"),
            since=p.get("since"),
            sha256=p.get("sha256"),
            assets={
                file: AssetDigest(
                    file, a["size"], a["sha256"], remote_id=a.get("id"), source=a.get("source")
                )
                for file, a in p.get("assets", {}).items()
            },
        )
        for name, p in data.get("pending", {}).items()
    }
    return Recorded(
        finetunes=finetunes,
        endpoints=dict(data.get("endpoints", {})),
        pending=pending,
        versions=versions,
        leftovers=tuple(
            Leftover(
                name=left["name"],
                remote_name=left["remote_name"],
                provider=left["provider"],
                account=left["account"],
                id=left["id"],
                model=left["model"],
            )
            for left in data.get("leftovers", [])
        ),
    )


def to_json(record: Recorded, cache: dict[str, tuple[LockedFinetune, str]] | None = None) -> str:
    """The lock's text: exactly json.dumps(indent=2, sort_keys=True) of it.

    json's C encoder does not indent, so an indented dump runs in Python: ~5 ms for 200
    finetunes, paid on every step of an apply. With `cache` (name -> the entry and its text),
    only the entries that changed since the last call are dumped again.
    """
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "endpoints": dict(record.endpoints),
        "finetunes": _PLACEHOLDER,
    }
    if record.pending:
        data["pending"] = {name: _pending_to_json(p) for name, p in record.pending.items()}
    if any(record.versions.values()):
        data["versions"] = {
            name: {v: _version_to_json(ver) for v, ver in by_version.items()}
            for name, by_version in record.versions.items()
            if by_version
        }
    if record.leftovers:
        data["leftovers"] = [asdict(left) for left in record.leftovers]
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    # Values never hold a raw newline (JSON escapes it), so this line is the key's own.
    slot = '\n  "finetunes": ' + json.dumps(_PLACEHOLDER)
    return text.replace(slot, '\n  "finetunes": ' + _finetunes_text(record, cache), 1) + "\n"


_PLACEHOLDER = "\x00finetunes\x00"  # stands in for the finetunes while the rest is dumped


def _finetunes_text(record: Recorded, cache: dict[str, tuple[LockedFinetune, str]] | None) -> str:
    if not record.finetunes:
        return "{}"
    cache = {} if cache is None else cache
    lines = []
    for name in sorted(record.finetunes):
        entry = record.finetunes[name]
        hit = cache.get(name)
        if hit is None or hit[0] is not entry:
            body = json.dumps(_entry_to_json(entry), indent=2, sort_keys=True, ensure_ascii=False)
            hit = cache[name] = (entry, body.replace("\n", "\n    "))  # nested 2 levels deep
        lines.append(f"    {json.dumps(name, ensure_ascii=False)}: {hit[1]}")
    for gone in cache.keys() - record.finetunes.keys():
        del cache[gone]
    return "{\n" + ",\n".join(lines) + "\n  }"


def _pending_to_json(p: Pending) -> dict[str, Any]:
    return (
        {"op": p.op, "provider": p.provider, "account": p.account}
        | ({"asset": p.asset} if p.asset else {})
        | ({"since": p.since} if p.since else {})
        | ({"sha256": p.sha256} if p.sha256 else {})
        | ({"assets": {a.name: _asset_to_json(a) for a in p.assets.values()}} if p.assets else {})
    )


def _asset_to_json(a: AssetDigest) -> dict[str, Any]:
    return (
        {"size": a.size, "sha256": a.sha256}
        | ({"id": a.remote_id} if a.remote_id else {})
        | ({"source": a.source} if a.source else {})
    )


def _entry_to_json(f: LockedFinetune) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "provider": f.provider,
        "account": f.account,
        "id": f.id,
        "model": f.model,
        "assets": {
            a.name: _asset_to_json(a) | ({"verified": False} if a.name in f.unverified else {})
            for a in f.assets.values()
        },
    }
    if f.fields is not None:
        entry["fields"] = dict(f.fields)
    if f.prevent_destroy:
        entry["prevent_destroy"] = True
    for key in ("remote_name", "version", "created_at"):
        if getattr(f, key):
            entry[key] = getattr(f, key)
    return entry


def _version_to_json(v: LockedVersion) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "remote_name": v.remote_name,
        "provider": v.provider,
        "account": v.account,
        "id": v.id,
        "model": v.model,
        "state": v.state,
        "assets": {a.name: _asset_to_json(a) for a in v.assets.values()},
    }
    if v.fields is not None:
        entry["fields"] = dict(v.fields)
    if v.created_at:
        entry["created_at"] = v.created_at
    if v.prevent_destroy:
        entry["prevent_destroy"] = True
    return entry


def save(
    path: Path, record: Recorded, cache: dict[str, tuple[LockedFinetune, str]] | None = None
) -> None:
    """Write atomically and durably: a reader (or a crash) sees the old lock or the new one,
    never a mix, and the new one survives a power cut once this returns.

    A lockfile that is a symlink stays one, its target is what is replaced: the one file
    reconciler writes through a symlink, on purpose (two configs sharing one lockfile, which
    share its apply lock too). So it is resolved here, and the writer refuses nothing more."""
    path = path.resolve()
    text = to_json(record, cache)
    with atomic_file(path) as f:
        f.write(text.encode("utf-8"))
        f.flush()
        crashpoints.hit("lock.before-rename")


def recordable(
    path: Path,
    name: str,
    entry: LockedFinetune | None = None,
    version: LockedVersion | None = None,
    pending: Pending | None = None,
) -> None:
    """The last line behind providers/checked: a record is written only if read_lock takes it
    (the lock's schema, then its own rules, over a lock holding this record alone), else
    LockfileError naming it, before anything changes. Rules between records (one remote id or
    name twice) are the reader's: checking them on every write would cost an apply of a
    thousand finetunes a whole lock's check per step."""
    parts: dict[str, Any] = {}
    labels: list[str] = []
    if entry is not None:
        parts["finetunes"] = {name: _entry_to_json(entry)}
        labels.append(f"finetunes.{name}")
    if version is not None:
        parts["versions"] = {name: {version.version: _version_to_json(version)}}
        labels.append(f"versions.{name}.{version.version}")
    if pending is not None:
        parts["pending"] = {name: _pending_to_json(pending)}
        labels.append(f"pending.{name}")
    _refuse_unless(path, labels, parts, {"format_version": FORMAT_VERSION, "finetunes": {}})


def recordable_asset(path: Path, where: str, provider: str, asset: AssetDigest) -> None:
    """An asset added to a record already taken (`where`, of `provider`): only it is checked,
    by the lock's `asset` definition and the asset names of its provider (a tenth of what
    checking its whole record again costs, on every upload of an apply)."""
    body = _asset_to_json(asset)
    error = next(iter(_part("asset").iter_errors(body)), None)
    try:
        if error is not None:
            place = schema.display_path((*where.split("."), "assets", asset.name, *error.path))
            raise LockfileError(f"{path}: {place}: {_short(error.message)}")
        _check_record(path, where, {"provider": provider, "assets": {asset.name: body}}, "")
    except LockfileError as exc:
        raise _not_recorded(path, [where], exc) from None


def _refuse_unless(
    path: Path, labels: list[str], parts: dict[str, Any], data: dict[str, Any]
) -> None:
    try:
        for key, part in parts.items():
            error = next(iter(_part(key).iter_errors(part)), None)
            if error is not None:
                where = schema.display_path((key, *error.absolute_path))
                raise LockfileError(f"{path}: {where}: {_short(error.message)}")
        _check(path, data | parts)
    except LockfileError as exc:
        raise _not_recorded(path, labels, exc) from None


def _not_recorded(path: Path, labels: list[str], exc: LockfileError) -> LockfileError:
    why = str(exc).removeprefix(f"{path}: ").removesuffix(f"; {RESTORE}")
    return LockfileError(
        f"{path}: {visible(' and '.join(labels))} not recorded: every later run would refuse "
        f"the lockfile ({visible(why)}); the lockfile was left as it was"
    )


@cache
def _part(key: str) -> Draft202012Validator:
    """The lock schema's rule for one of its parts (`finetunes`, `versions`, `pending`, or
    the `asset` definition), with its definitions: read from the schema, never copied."""
    lock = schema.load("lock.schema.json")
    rule = lock["$defs"][key] if key == "asset" else lock["properties"][key]
    return Draft202012Validator({"$defs": lock["$defs"], **rule})


class LockWriter:
    """The lock as an apply changes it: every change is saved before the method returns.

    Concurrent steps share saves (group commit, as databases do with their journal): a change
    is made in memory, then its caller waits until a save that includes it is on disk. The
    thread that gets to write saves every change made so far, so steps finishing together cost
    one write and one fsync, not one each, and none returns before its change is durable.
    """

    def __init__(self, path: Path, start: Recorded) -> None:
        self.path = path
        self._finetunes = dict(start.finetunes)
        self._endpoints = dict(start.endpoints)
        self._pending = dict(start.pending)
        self._versions = {n: dict(v) for n, v in start.versions.items()}
        self._leftovers = {left.key: left for left in start.leftovers}
        self._mutex = threading.Lock()  # the state in memory
        self._io = threading.Lock()  # one save at a time
        self._changes = 0  # how many changes were made
        self._saved = 0  # how many of them the file on disk holds
        self._texts: dict[str, tuple[LockedFinetune, str]] = {}  # to_json's per-entry cache

    @property
    def current(self) -> Recorded:
        with self._mutex:
            return self._record()

    def intend(self, name: str, op: Pending) -> None:
        """Journal an operation before it is sent: the next plan resolves it if we die."""
        recordable(self.path, name, pending=op)
        with self._mutex:
            self._pending[name] = op
            mine = self._changed()
        self._commit(mine)

    def put(
        self,
        entry: LockedFinetune,
        endpoint: str,
        replaces: str | None = None,
        then: Pending | None = None,
    ) -> None:
        """Record an entry; `replaces` names the entry it takes over (a rename), `then` journals
        the next operation, all in one write."""
        recordable(self.path, entry.name, entry, pending=then)
        with self._mutex:
            if replaces is not None:
                self._finetunes.pop(replaces, None)
                self._pending.pop(replaces, None)
            self._finetunes[entry.name] = entry
            self._leftovers.pop((entry.provider, entry.account, entry.id), None)  # ours again
            self._endpoints[entry.provider] = endpoint
            self._journal(entry.name, then)
            mine = self._changed()
        self._commit(mine)

    def add_asset(self, name: str, asset: AssetDigest, then: Pending | None = None) -> None:
        """Record an uploaded asset; `then` journals the next operation in the same write."""
        with self._mutex:
            entry = self._finetunes[name]
            recordable_asset(self.path, f"finetunes.{name}", entry.provider, asset)
            if then is not None:
                recordable(self.path, name, pending=then)
            self._finetunes[name] = replace(entry, assets={**entry.assets, asset.name: asset})
            self._journal(name, then)
            mine = self._changed()
        self._commit(mine)

    def journaled(self, name: str) -> Pending | None:
        """The journal entry of `name` as it stands."""
        with self._mutex:
            return self._pending.get(name)

    def settle(self, name: str) -> None:
        """End the journal entry of `name`: its operation got a definite answer (it was refused,
        so nothing was made), and the next plan must not take it for one cut off."""
        with self._mutex:
            if name not in self._pending:
                return
            self._pending.pop(name)
            mine = self._changed()
        self._commit(mine)

    def forget(self, name: str, *, leftover: bool = False) -> None:
        """Drop a finetune and its versions; with `leftover`, each remote one stays known as
        ours (reconciler made it and leaves it in the account), else it is let go."""
        with self._mutex:
            entry = self._finetunes.pop(name, None)
            self._pending.pop(name, None)
            versions = self._versions.pop(name, {})
            if leftover:
                for left in _leftovers_of(name, entry, versions.values()):
                    self._leftovers[left.key] = left
            mine = self._changed()
        self._commit(mine)

    def forget_leftover(self, key: tuple[str, str, str]) -> None:
        """Drop one leftover, by (provider, account, id): it was deleted."""
        with self._mutex:
            self._leftovers.pop(key, None)
            mine = self._changed()
        self._commit(mine)

    def forget_leftovers(self, name: str) -> tuple[Leftover, ...]:
        """Let go of the leftovers of the finetune once called `name`: they become unmanaged."""
        with self._mutex:
            gone = tuple(left for left in self._leftovers.values() if left.name == name)
            for left in gone:
                del self._leftovers[left.key]
            mine = self._changed()
        self._commit(mine)
        return gone

    def drop_current(self, name: str) -> None:
        """Drop a finetune's current record (its remote one is deleted or gone) and keep its
        other versions, which are still in the account. Unversioned, the same as forget."""
        with self._mutex:
            self._finetunes.pop(name, None)
            self._pending.pop(name, None)
            mine = self._changed()
        self._commit(mine)

    # --- versioned finetunes: every version but the current one lives in `versions` ---

    def add_version(
        self, name: str, version: LockedVersion, endpoint: str, then: Pending | None = None
    ) -> None:
        """Record a version that was made (a candidate until promoted); `then` journals the
        next operation in the same write."""
        recordable(self.path, name, version=version, pending=then)
        with self._mutex:
            self._versions.setdefault(name, {})[version.version] = version
            self._leftovers.pop((version.provider, version.account, version.id), None)
            self._endpoints[version.provider] = endpoint
            self._journal(name, then)
            mine = self._changed()
        self._commit(mine)

    def add_version_asset(
        self, name: str, version: str, asset: AssetDigest, then: Pending | None = None
    ) -> None:
        with self._mutex:
            held = self._versions[name][version]
            recordable_asset(self.path, f"versions.{name}.{version}", held.provider, asset)
            if then is not None:
                recordable(self.path, name, pending=then)
            self._versions[name][version] = replace(held, assets={**held.assets, asset.name: asset})
            self._journal(name, then)
            mine = self._changed()
        self._commit(mine)

    def mark_version(self, name: str, version: str, state: str) -> None:
        with self._mutex:
            held = self._versions[name][version]
            self._versions[name][version] = replace(held, state=state)
            mine = self._changed()
        self._commit(mine)

    def promote(self, name: str, version: str, current_version: str | None) -> LockedFinetune:
        """Make a recorded version current, in one write; the version that was current is
        retired under `current_version` (its content version). Returns the new current."""
        with self._mutex:
            chosen = self._versions[name].pop(version)
            was = self._finetunes.get(name)
            if was is not None and current_version is not None:
                self._versions[name][current_version] = LockedVersion(
                    version=current_version,
                    remote_name=was.remote_name or was.name,
                    provider=was.provider,
                    account=was.account,
                    id=was.id,
                    model=was.model,
                    assets=dict(was.assets),
                    fields=None if was.fields is None else dict(was.fields),
                    created_at=was.created_at,
                    state="retired",
                    prevent_destroy=was.prevent_destroy,
                )
            entry = LockedFinetune(
                name=name,
                provider=chosen.provider,
                account=chosen.account,
                id=chosen.id,
                model=chosen.model,
                assets=dict(chosen.assets),
                fields=chosen.fields,
                prevent_destroy=chosen.prevent_destroy,
                remote_name=chosen.remote_name,
                version=chosen.version,
                created_at=chosen.created_at,
            )
            self._finetunes[name] = entry
            if not self._versions[name]:
                del self._versions[name]
            self._pending.pop(name, None)
            mine = self._changed()
        self._commit(mine)
        return entry

    def accept_fields(self, name: str, version: str | None, fields: dict[str, Any]) -> None:
        """Record fields as the account now has them (apply --refresh-only): over what was
        recorded, so a field the list does not return (Cloudflare's public) is kept."""
        with self._mutex:
            if version is None:
                entry = self._finetunes[name]
                merged = {**(entry.fields or {}), **fields}
                entry = replace(entry, fields=merged, model=str(fields.get("model", entry.model)))
                recordable(self.path, name, entry)
                self._finetunes[name] = entry
            else:
                held = self._versions[name][version]
                held = replace(held, fields={**(held.fields or {}), **fields})
                recordable(self.path, name, version=held)
                self._versions[name][version] = held
            mine = self._changed()
        self._commit(mine)

    def forget_version(self, name: str, version: str, *, leftover: bool = False) -> None:
        with self._mutex:
            held = self._versions.get(name, {})
            was = held.pop(version, None)
            if leftover and was is not None:
                for left in _leftovers_of(name, None, [was]):
                    self._leftovers[left.key] = left
            if not held:
                self._versions.pop(name, None)
            self._pending.pop(name, None)
            mine = self._changed()
        self._commit(mine)

    def _journal(self, name: str, then: Pending | None) -> None:
        # a step's result and the next step's intent go out together: each write is one the
        # next plan already knows how to resolve, and an apply makes a third fewer writes
        if then is None:
            self._pending.pop(name, None)
        else:
            self._pending[name] = then

    def _record(self) -> Recorded:
        return Recorded(
            finetunes=dict(sorted(self._finetunes.items())),
            endpoints=dict(self._endpoints),
            pending=dict(self._pending),
            versions={n: dict(sorted(v.items())) for n, v in sorted(self._versions.items())},
            leftovers=tuple(sorted(self._leftovers.values(), key=lambda left: left.key)),
        )

    def _changed(self) -> int:
        self._changes += 1
        return self._changes

    def _commit(self, mine: int) -> None:
        """Return once change number `mine` is in the file on disk."""
        with self._io:
            if self._saved >= mine:
                return  # a save made while we waited for the lock included it
            with self._mutex:
                record, upto = self._record(), self._changes
            save(self.path, record, self._texts)
            self._saved = upto


def _leftovers_of(
    name: str, entry: LockedFinetune | None, versions: Iterable[LockedVersion]
) -> list[Leftover]:
    """The remote finetunes a record names, as leftovers of the finetune `name`."""
    found = [Leftover(name, v.remote_name, v.provider, v.account, v.id, v.model) for v in versions]
    if entry is not None:
        remote = entry.remote_name or name
        found.append(Leftover(name, remote, entry.provider, entry.account, entry.id, entry.model))
    return found
