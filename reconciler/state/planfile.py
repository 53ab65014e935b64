"""Saved plans: the plan plus fingerprints of everything it was computed from.

`apply PLANFILE` plans again from the current inputs and carries out that fresh plan only if it
equals the saved one in every action, field, path and digest: a plan file is a record of what
was reviewed, never an instruction of its own (it is not signed, so anything in it could have
been edited). When they differ, the fingerprints say which input moved since review (the
config, the lockfile, an asset's content, an account's remote state); when no input moved, the
file itself was edited, and each difference is named.

The file also carries the sha256 of its whole content (`sha256`, over the canonical JSON of
everything else in it). Cutting `targets` and `plan.changes` down together leaves a file that
equals a plan made with `--target`, which the comparison cannot tell from one: the digest can,
so a narrowed file (a reviewed "create the new, delete the old" cut to the delete) is refused,
naming what it leaves out. It is a seal, not a signature: whoever recomputes it on purpose
gets past it, and then meets the comparison above.
A plan file holds no secrets: tokens are never part of a plan or of what is fingerprinted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.base import strictjson
from reconciler.base.errors import PlanFileError, StalePlanError
from reconciler.base.model import Desired, Digests, Observed, Recorded
from reconciler.base.untrusted import visible
from reconciler.plan import codec
from reconciler.plan.planner import Plan
from reconciler.state import lockfile
from reconciler.state.atomic import write_atomic

KIND = "reconciler-plan"
FORMAT_VERSION = 1
MAX_PLAN_BYTES = 64 * 1024 * 1024  # 1,000 finetunes plan in about 3 MB
MAX_LINES = 20  # differences named in a refusal; the rest are counted
SEAL = "sha256"  # the key of the file's digest of the rest of its content


@dataclass(frozen=True)
class Fingerprints:
    config: str
    lockfile: str
    assets: Mapping[str, str]  # path relative to the config's folder -> sha256 of its content
    observed: Mapping[str, str]  # "provider/account" -> hash of what its list returned
    endpoints: Mapping[str, str]
    # each remote source as declared (hf://REPO@REVISION) -> the commit it resolved to
    sources: Mapping[str, str] = field(default_factory=dict)


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def fingerprint(
    desired: Desired,
    recorded: Recorded,
    digests: Digests,
    observed: Observed,
    endpoints: Mapping[str, str],
    pins: Mapping[str, str] | None = None,
) -> Fingerprints:
    base = desired.config_path.resolve().parent
    named: dict[Path, str] = {}

    folders: dict[Path, Path] = {}

    def relative(path: Path) -> str:
        # each path resolved once, against a base resolved once, and each folder once:
        # resolve() is an lstat per path component, and 1,000 finetunes ask for 4,000 of these
        if path not in named:
            if path.parent not in folders:
                folders[path.parent] = path.parent.resolve()
            inside = folders[path.parent] / path.name
            resolved = inside.resolve() if inside.is_symlink() else inside
            named[path] = codec.relative(resolved, base, base_resolved=True, resolved=True)
        return named[path]

    declared = [
        {
            "name": d.name,
            "provider": d.provider,
            "account": d.account,
            "fields": d.fields,
            "prevent_destroy": d.prevent_destroy,
            "previous_name": d.previous_name,
            "assets": {a.name: relative(a.path) for a in d.assets},
            "versioning": d.versioning,
            "keep": d.keep,
            "checks": list(d.checks),
        }
        for d in desired.finetunes
    ]
    settings = {
        "prune": desired.prune,
        "ignore": {p: list(g) for p, g in desired.ignore.items()},
        "outputs": list(desired.outputs),
    }
    return Fingerprints(
        config=_hash(
            {"finetunes": declared, "accounts": dict(desired.accounts), "settings": settings}
        ),
        lockfile=_hash(lockfile.to_json(recorded)),
        assets={relative(p): d.sha256 for p, d in sorted(digests.items())},
        observed={
            f"{provider}/{account}": _hash(
                [
                    [r.id, r.name, r.fields, r.status, r.modified_at]
                    for r in sorted(remotes, key=lambda r: r.id)
                ]
            )
            for (provider, account), remotes in sorted(observed.finetunes.items())
        },
        endpoints=dict(endpoints),
        sources=dict(sorted((pins or {}).items())),
    )


def seal(data: Mapping[str, Any]) -> str:
    """The digest of a plan file's content, its SEAL key left out: sha256 of the JSON text
    with keys sorted at every depth, no whitespace, non-ASCII kept, encoded as UTF-8. Over the
    content, not the bytes: a file indented or escaped anew keeps its seal."""
    rest = {k: v for k, v in data.items() if k != SEAL}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _broken_seal(data: Mapping[str, Any]) -> str | None:
    """Why the file's content is not what was saved, or None if its seal holds."""
    found = data.get(SEAL)
    if not isinstance(found, str):
        return (
            "It carries no sha256 of its content (it was removed, or a reconciler older than "
            "this one made the file)"
        )
    if found != seal(data):
        return "Its content no longer has the sha256 it was saved with"
    return None


def differences(saved: Fingerprints, now: Fingerprints) -> list[str]:
    """What moved since the plan was made, one readable line per input."""
    found: list[str] = []
    if saved.endpoints != now.endpoints:
        found.append(
            f"the endpoints differ: planned against {dict(saved.endpoints)}, "
            f"now {dict(now.endpoints)}"
        )
    if saved.config != now.config:
        found.append("the config declares something different (a finetune, a field or an account)")
    if saved.lockfile != now.lockfile:
        found.append("the lockfile changed (another apply, an import or a forget ran since)")
    for path in sorted(set(saved.assets) | set(now.assets)):
        was, is_ = saved.assets.get(path), now.assets.get(path)
        if was != is_:
            if was is None:
                found.append(f"{path} is a new asset")
            elif is_ is None:
                found.append(f"{path} is no longer an asset of the config")
            else:
                found.append(f"{path} changed content ({was[:19]}… -> {is_[:19]}…)")
    for key in sorted(set(saved.sources) | set(now.sources)):
        was, is_ = saved.sources.get(key), now.sources.get(key)
        if was is not None and is_ is not None and was != is_:
            found.append(
                f"{key} moved: it named commit {was[:12]} when the plan was made, {is_[:12]} now"
            )
    for key in sorted(set(saved.observed) | set(now.observed)):
        if saved.observed.get(key) != now.observed.get(key):
            provider, account = key.split("/", 1)
            found.append(f"the finetunes in {provider} account {account} changed remotely")
    return found


def save(path: Path, plan: Plan, prints: Fingerprints, config_path: Path) -> None:
    base = config_path.resolve().parent
    data = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "reconciler_version": __version__,
        "config": str(config_path),
        # the finetunes the plan covers (all, or those --target named): apply plans these again
        "targets": [_address(c.provider, c.name) for c in plan.changes],
        "fingerprints": {
            "config": prints.config,
            "lockfile": prints.lockfile,
            "assets": dict(prints.assets),
            "observed": dict(prints.observed),
            "endpoints": dict(prints.endpoints),
        }
        | ({"sources": dict(prints.sources)} if prints.sources else {}),
        "plan": codec.plan_to_data(plan, base),
    }
    data[SEAL] = seal(data)
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if not path.parent.is_dir():  # a folder the user named: not made for them
        raise PlanFileError(f"{path}: cannot be written (no folder {path.parent})")
    try:  # the user names it anywhere (`plan -o`): no project root, but never a symlink
        write_atomic(path, text)
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot be written ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class Saved:
    config_path: Path
    fingerprints: Fingerprints
    data: Mapping[str, Any]
    targets: tuple[str, ...] = ()  # provider.name of each change the file covers
    version: str = __version__  # of the reconciler that made it
    edited: str | None = None  # why the file's seal does not hold; None when it does

    def plan(self, config_path: Path) -> Plan:
        return codec.plan_from_data(dict(self.data), config_path.resolve().parent)


def _address(provider: str, name: str) -> str:
    return f"{provider}.{name}"


def _read(path: Path) -> str:
    """The text of a plan file: a regular file of sane size, read without blocking."""
    try:
        raw = strictjson.read_bytes(path, MAX_PLAN_BYTES)
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such plan file") from None
    except strictjson.Refused as exc:
        raise PlanFileError(
            f"{path}: {exc}, which no plan file (`reconciler plan -o`) is; is it the right file?"
        ) from None
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanFileError(
            f"{path}: is not UTF-8 text ({exc.reason}), so not a plan file"
        ) from None


def read_saved_plan(path: Path) -> Saved:
    """A plan file made by `reconciler plan -o`, checked (PlanFileError otherwise)."""
    text = _read(path)
    try:
        data = strictjson.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "not a reconciler plan file, or a damaged one"
        ) from None
    except ValueError as exc:
        raise PlanFileError(f"{path}: not a reconciler plan file: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise PlanFileError(f"{path}: not a reconciler plan file (made with `reconciler plan -o`)")
    version = data.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise PlanFileError(
            f"{path}: plan format_version {str(version)[:20]} is not the one "
            f"this reconciler reads ({FORMAT_VERSION}); make the plan again with this version"
        )
    try:
        f = data["fingerprints"]
        prints = Fingerprints(
            config=_text(f["config"]),
            lockfile=_text(f["lockfile"]),
            assets=_strings(f["assets"]),
            observed=_strings(f["observed"]),
            endpoints=_strings(f["endpoints"]),
            sources=_strings(f.get("sources", {})),
        )
        plan = data["plan"]
        if not isinstance(plan, dict) or not isinstance(plan.get("changes"), list):
            raise TypeError("plan.changes is not a list")
        targets = data.get("targets")
        if targets is None:  # made before plan files recorded them: what the file holds
            targets = [_address(c["provider"], c["name"]) for c in plan["changes"]]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise TypeError("targets is not a list of provider.name addresses")
        saved = Saved(
            Path(_text(data["config"])),
            prints,
            plan,
            tuple(targets),
            str(data.get("reconciler_version", "?"))[:40],
            _broken_seal(data),
        )
        saved.plan(saved.config_path)  # every field present and well-typed
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        detail = str(exc)[:200]
        raise PlanFileError(
            f"{path}: the plan file is damaged ({type(exc).__name__}: {detail}); make a new plan"
        ) from None
    return saved


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {type(value).__name__}")
    return value


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return {_text(k): _text(v) for k, v in value.items()}


def check_config(path: Path, planned_for: Path, given: Path) -> None:
    """The plan applies to the config it was made from: the same path as given (a relative
    path, in another checkout of the same repository) or the same file."""
    same = os.path.normpath(planned_for) == os.path.normpath(given) or (
        planned_for.exists() and given.exists() and planned_for.resolve() == given.resolve()
    )
    if not same:
        raise PlanFileError(
            f"the plan {path} was made for {planned_for}, not {given}; apply it with that "
            "config, or make a new plan"
        )


def check_fresh(path: Path, saved: Fingerprints, now: Fingerprints) -> None:
    moved = differences(saved, now)
    if moved:
        lines = "\n".join(f"  - {m}" for m in moved)
        raise StalePlanError(
            f"the saved plan {path} is stale; since it was made:\n{lines}\n"
            "Nothing was applied. Make and review a new plan."
        )


def matching(path: Path, saved: Saved, plan: Plan, config_path: Path, pruning: bool) -> Plan:
    """The fresh plan (of every finetune, made from the current inputs) narrowed to what the
    file covers, if it equals the file's plan exactly and the file's seal holds; else
    PlanFileError naming each difference. What is then applied is this fresh plan, never what
    the file says."""
    wanted = set(saved.targets)
    fresh = replace(
        plan, changes=tuple(c for c in plan.changes if _address(c.provider, c.name) in wanted)
    )
    base = config_path.resolve().parent
    found = _plan_differences(saved.data, codec.plan_to_data(fresh, base), base, pruning)
    if saved.edited is not None:
        # a legitimately targeted plan leaves these out too; an edited one must not hide them
        found += [
            f"the file leaves out {_address(c.provider, c.name)} ({c.action.value}), which "
            "the current inputs plan"
            for c in plan.changes
            if _address(c.provider, c.name) not in wanted
        ]
    if found or saved.edited is not None:
        raise PlanFileError(_refusal(path, saved, found))
    return fresh


def _refusal(path: Path, saved: Saved, found: list[str]) -> str:
    shown = found[:MAX_LINES]
    more = len(found) - len(shown)
    lines = "\n".join(f"  - {line}" for line in shown)
    if more:
        lines += f"\n  - and {more} more difference(s)"
    head = (
        f"the saved plan {path} does not match what the current inputs plan, so it is not "
        f"what was reviewed:\n{lines}\n"
        if found
        else f"the saved plan {path} is not what was reviewed. "
    )
    if saved.edited is not None:
        why = f"{saved.edited}: the file was edited after it was made."
    else:
        other = (
            f" (or it was made by reconciler {saved.version}, which plans differently)"
            if saved.version != __version__
            else ""
        )
        why = (
            "Its fingerprints match the current inputs: the file was edited after it was "
            f"made{other}."
        )
    return f"{head}{why} Nothing was applied. Make and review a new plan."


_MISSING = object()


def _plan_differences(
    saved: Mapping[str, Any], fresh: Mapping[str, Any], base: Path, pruning: bool
) -> list[str]:
    found: list[str] = []
    rest_saved = {k: v for k, v in saved.items() if k != "changes"}
    rest_fresh = {k: v for k, v in fresh.items() if k != "changes"}
    _walk("", rest_saved, rest_fresh, base, found)
    saved_changes = [c for c in saved["changes"] if isinstance(c, dict)]
    if len(saved_changes) != len(saved["changes"]):
        found.append("the file's changes include something that is not a change")
    fresh_changes = list(fresh["changes"])

    def address(c: Mapping[str, Any]) -> str:
        # a versioned finetune's older versions are deleted by changes of their own; a name
        # from the file is shown escaped: a line break in it cannot start a line of the refusal
        version = f"@{c.get('version')}" if c.get("action") == "delete" and c.get("version") else ""
        return visible(_address(str(c.get("provider")), str(c.get("name"))) + version)

    by_saved = [address(c) for c in saved_changes]
    by_fresh = [address(c) for c in fresh_changes]
    for a in sorted({a for a in by_saved if by_saved.count(a) > 1}):
        found.append(f"the file has {by_saved.count(a)} changes for {a}")
    for a in by_fresh:
        if a not in by_saved:
            found.append(f"the file has no change for {a}, which the current inputs plan")
    for a in by_saved:
        if a not in by_fresh:
            found.append(f"the file has a change for {a}, which the current inputs do not plan")
    common = [a for a in by_fresh if a in by_saved]
    if [a for a in by_saved if a in by_fresh] != common:
        found.append("the file lists the changes in another order than the current inputs")
    for a in common:
        was = saved_changes[by_saved.index(a)]
        now = fresh_changes[by_fresh.index(a)]
        lines: list[str] = []
        _walk("", was, now, base, lines)
        if not pruning and was.get("action") == "delete" and now.get("action") == "forget":
            lines.append("if the plan was made with --prune, apply it with --prune")
        if pruning and was.get("action") == "forget" and now.get("action") == "delete":
            lines.append("the plan was made without --prune: apply it without --prune")
        found += [f"{a}: {line}" for line in lines]
    return found


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _show(value: Any) -> str:
    if value is _MISSING:
        return "nothing"
    text = repr(value) if isinstance(value, str) else _canonical(value)
    return text if len(text) <= 90 else text[:87] + "..."


def _walk(where: str, saved: Any, fresh: Any, base: Path, found: list[str]) -> None:
    """One line per value that differs, named by its place in the change ("steps[1].path")."""
    if saved is not _MISSING and fresh is not _MISSING and _canonical(saved) == _canonical(fresh):
        return
    if isinstance(saved, dict) and isinstance(fresh, dict):
        if where.startswith("steps[") and _step(saved) != _step(fresh):
            # another step altogether: one line for it, not one per field
            line = f"{where}: the file says {_step(saved)}, the inputs plan {_step(fresh)}"
            found.append(line + _where_outside(saved.get("path"), base))
            return
        for key in sorted(set(saved) | set(fresh), key=str):
            place = f"{where}.{visible(str(key))}" if where else visible(str(key))
            _walk(place, saved.get(key, _MISSING), fresh.get(key, _MISSING), base, found)
        return
    if isinstance(saved, list) and isinstance(fresh, list):
        if len(saved) != len(fresh):
            found.append(f"{where}: the file has {len(saved)}, the inputs plan {len(fresh)}")
        for i, (was, now) in enumerate(zip(saved, fresh, strict=False)):
            _walk(f"{where}[{i}]", was, now, base, found)
        return
    line = f"{where}: the file says {_show(saved)}, the inputs plan {_show(fresh)}"
    found.append(line + (_where_outside(saved, base) if where.endswith("path") else ""))


def _step(step: Mapping[str, Any]) -> str:
    words = [str(step.get("kind")), *([str(step["asset"])] if step.get("asset") else [])]
    if step.get("path"):
        words.append(f"from {step['path']}")
    return repr(" ".join(words))


def _where_outside(path: Any, base: Path) -> str:
    if not isinstance(path, str) or not _outside(path, base):
        return ""
    return (
        f"; {visible(path)} is outside the config's folder {base}, and no asset of the config "
        "is there"
    )


def _outside(value: str, base: Path) -> bool:
    try:
        target = Path(value) if os.path.isabs(value) else base / value
        return not target.resolve().is_relative_to(base)
    except (OSError, ValueError, RuntimeError):
        return True
