"""finetunes.yaml -> Desired: parse with line marks, interpolate ${ENV}, validate, resolve files.

Every problem is collected and reported at once; nothing here talks to a network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.adapters.preflight import Limits, LimitsError
from reconciler.base.credentials import secret_variables
from reconciler.base.errors import ConfigError, Problem
from reconciler.base.model import Desired, DesiredFinetune, SourceMark
from reconciler.config import schema
from reconciler.config.interpolate import expand, references
from reconciler.config.items import SINGLE_ACCOUNT, ItemContext, ItemKind
from reconciler.config.yamlsource import Path_, Source, parse, read_text
from reconciler.state import outputs
from reconciler.state.statcache import StatCache

MAX_CONFIG_BYTES = 10_000_000  # 1,000 finetunes take about 200 kB

SCHEMA_FACT = "schema-passed"  # in the stat cache: schema.token() of a text found valid


def load(
    path: Path,
    env: Mapping[str, str],
    cache: StatCache | None = None,
    *,
    kinds: Mapping[str, ItemKind],
) -> Desired:
    """Read and validate the config; raises ConfigError with every problem found.

    `cache`: what the adapter checks read from each file is kept there, keyed by its stat,
    so an unchanged adapter is not read again (the caller saves the cache). `kinds`: each
    provider's ItemKind, by name (providers.registry.item_kinds())."""
    shown = str(path)
    fence = cache.fence() if cache is not None else None  # before the config is read
    text, st = read_text(path, shown, MAX_CONFIG_BYTES)

    source, problems = parse(text, shown)
    if source is None:
        raise ConfigError(problems)
    clean = not problems
    unresolved = _interpolate(source, env, problems)
    interpolated = len(problems)
    # The schema check is a pure function of the text and the variables it names: a pass is
    # remembered, and the same text with the same values is not checked again (~0.2 s for
    # 1,000 finetunes).
    names = sorted(references(text))
    values = json.dumps([[n, env.get(n)] for n in names])
    passed = schema.token("finetunes.schema.json", text, values) if cache is not None else None
    if passed is None or cache is None or cache.get(path, st, SCHEMA_FACT) != passed:
        found = schema.problems(source, skip=unresolved)
        problems.extend(found)
        if cache is not None and passed is not None and not found and not problems:
            cache.put(path, st, SCHEMA_FACT, passed, fence)
    only_accounts = clean and len(problems) == interpolated
    if problems and not (only_accounts and _stand_in(source, unresolved, kinds)):
        raise ConfigError(problems)
    desired = _build(source, path, env, problems, cache, kinds)
    if problems:
        raise ConfigError(problems)
    return desired


def _stand_in(source: Source, unresolved: set[Path_], kinds: Mapping[str, ItemKind]) -> bool:
    """When only account ids are unresolved (an unset ${CLOUDFLARE_ACCOUNT_ID}: the
    environment's to fix, not the config's), put a well-formed stand-in in their place so
    that the rest is checked too and every problem is reported at once (the unset variable
    is among them, so the config still fails). False, changing nothing, otherwise."""
    if not unresolved or any(not path or path[-1] != "account_id" for path in unresolved):
        return False
    for path in unresolved:
        node: Any = source.data
        for part in path[:-1]:
            node = node[part]
        provider = str(path[1] if path[0] == "providers" else node.get("provider"))
        rule = kinds[provider].account if provider in kinds else None
        if rule is None:
            return False
        node[path[-1]] = rule.stand_in
    return True


def _interpolate(source: Source, env: Mapping[str, str], problems: list[Problem]) -> set[Path_]:
    """Replace ${VAR} in every string value, in place (interpolate.py has the syntax). Returns
    the paths left unresolved. A reference to a secret, or a value holding one, is refused:
    the config is shown in plans and saved in plan files; the message names, never shows."""
    unresolved: set[Path_] = set()
    secrets = secret_variables(env)

    def sub(value: str, path: Path_) -> str:
        expansion = expand(value, env)
        for message in expansion.problems:
            problems.append(source.problem(path, f"{schema.display_path(path)}: {message}"))
        if not expansion.resolved:
            unresolved.add(path)
            return value
        held = [
            n for n, secret in secrets.items() if len(secret) >= 8 and secret in expansion.value
        ]
        if held:
            unresolved.add(path)
            problems.append(
                source.problem(
                    path,
                    f"{schema.display_path(path)}: holds the value of {held[0]}, a secret; "
                    "a config is shown in plans and saved in plan files: remove it",
                )
            )
        return expansion.value

    def walk(node: Any, path: Path_) -> Any:
        if isinstance(node, str):
            return sub(node, path)
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        return node

    source.data = walk(source.data, ())
    return unresolved


def _build(
    source: Source,
    path: Path,
    env: Mapping[str, str],
    problems: list[Problem],
    cache: StatCache | None,
    kinds: Mapping[str, ItemKind],
) -> Desired:
    data = source.data
    providers = data.get("providers") or {}
    used = {item["provider"] for item in data.get("finetunes") or []}
    limits = _limits(source, providers, used, kinds, problems)
    notes: list[str] = []
    finetunes = _finetunes(source, path, env, problems, cache, kinds, limits, notes)
    settings = data.get("settings") or {}
    return Desired(
        config_path=path,
        finetunes=finetunes,
        accounts=_accounts(finetunes, providers, kinds),
        limits=limits,
        settings={p: dict(s or {}) for p, s in sorted(providers.items())},
        prune=bool(settings.get("prune", False)),
        warnings=tuple(notes),
        ignore={
            p: tuple((s or {}).get("ignore") or ())
            for p, s in sorted(providers.items())
            if (s or {}).get("ignore")
        },
        outputs=_outputs(source, path, finetunes, problems),
    )


def _outputs(
    source: Source, path: Path, finetunes: tuple[DesiredFinetune, ...], problems: list[Problem]
) -> tuple[str, ...]:
    """The `outputs:` paths, each checked by the rule the writer applies (state.outputs): inside
    the config's folder, not the state folder, each file once; a .env file refuses two
    finetune names that become one line name."""
    paths = tuple(o["path"] for o in source.data.get("outputs") or ())
    seen: dict[str, int] = {}
    assets = _local_assets(finetunes) if paths else {}
    for i, relative in enumerate(paths):
        where: Path_ = ("outputs", i, "path")
        problem = outputs.path_problem(relative, path.name)
        key = outputs.same_path(relative)
        if problem is None and key in seen:
            problem = f"names the same file as outputs[{seen[key]}].path ({paths[seen[key]]})"
        seen.setdefault(key, i)
        owner = assets.get((path.parent / key).resolve()) if problem is None else None
        if owner is not None:  # written after the apply: the next plan would see new content
            problem = f"is {owner}; an apply would overwrite what it uploads"
        if problem is None and outputs.format_of(relative) == "env":
            collisions = outputs.env_collisions(d.name for d in finetunes)
            clash = f"{outputs.ENV_CLASH} {'; '.join(collisions)}; rename one of them"
            problem = clash if collisions else None
        if problem is not None:
            shown = json.dumps(relative, ensure_ascii=False)  # a control character escaped
            text = f"{schema.display_path(where)}: {shown} {problem}"
            problems.append(source.problem(where, text))
    return paths


def _local_assets(finetunes: tuple[DesiredFinetune, ...]) -> dict[Path, str]:
    """Each local asset file, as the file it leads to, and whose it is (for a message)."""
    return {
        a.path.resolve(): f"the {a.name} of finetune {d.name}"
        for d in finetunes
        for a in d.assets
        if a.source is None
    }


def _finetunes(
    source: Source,
    path: Path,
    env: Mapping[str, str],
    problems: list[Problem],
    cache: StatCache | None,
    kinds: Mapping[str, ItemKind],
    limits: Mapping[str, Limits],
    notes: list[str],
) -> tuple[DesiredFinetune, ...]:
    """Each item built by its provider's kind, in the config's order; duplicates refused."""
    data = source.data
    providers = data.get("providers") or {}
    allow_external = bool((data.get("settings") or {}).get("allow_external_assets", False))
    seen: dict[str, int] = {}
    finetunes: list[DesiredFinetune] = []
    root = path.parent.resolve()  # once, not once per finetune (an lstat per component)
    for i, item in enumerate(data.get("finetunes") or []):
        where: Path_ = ("finetunes", i)
        if _duplicate(source, where, item["name"], seen, problems):
            continue
        seen[item["name"]] = i
        provider = item["provider"]
        line, column = source.mark(where) or (0, 0)
        context = ItemContext(
            source=source,
            where=where,
            item=item,
            base=path.parent,
            resolved=root,
            env=env,
            settings=providers.get(provider) or {},
            allow_external=allow_external,
            mark=SourceMark(source.file, line, column),
            problems=problems,
            cache=cache,
            limits=limits.get(provider),
            notes=notes,
        )
        desired = kinds[provider].build(context)
        if desired.keep is not None and desired.versioning is None:
            context.problem(
                (*where, "keep"),
                f"finetune '{desired.name}': keep only applies to versions; add versioning: "
                "content (or settings.versioning: content)",
            )
        finetunes.append(desired)
    return tuple(finetunes)


def _duplicate(
    source: Source, where: Path_, name: str, seen: Mapping[str, int], problems: list[Problem]
) -> bool:
    if name not in seen:
        return False
    first = source.mark(("finetunes", seen[name], "name"))
    problems.append(
        source.problem(
            (*where, "name"),
            f"duplicate finetune name '{name}' "
            f"(first declared at line {first[0] if first else '?'})",
        )
    )
    return True


def _accounts(
    finetunes: tuple[DesiredFinetune, ...],
    providers: Mapping[str, Any],
    kinds: Mapping[str, ItemKind],
) -> dict[str, tuple[str, ...]]:
    """provider -> the accounts the config manages: those its finetunes use, the account_id a
    provider block names, and the one account of a provider whose key is scoped to one."""
    accounts: dict[str, set[str]] = {}
    for desired in finetunes:
        if desired.account:
            accounts.setdefault(desired.provider, set()).add(desired.account)
    for provider, settings in providers.items():
        rule = kinds[provider].account if provider in kinds else None
        if rule is not None and (settings or {}).get("account_id"):
            account = str(settings["account_id"])
            accounts.setdefault(provider, set()).add(account.lower() if rule.lower else account)
        elif rule is None:
            accounts.setdefault(provider, set()).add(SINGLE_ACCOUNT)
    return {p: tuple(sorted(a)) for p, a in sorted(accounts.items())}


def _limits(
    source: Source,
    providers: dict[str, Any],
    used: set[str],
    kinds: Mapping[str, ItemKind],
    problems: list[Problem],
) -> dict[str, Limits]:
    """Each provider's published limits with the config's overrides (providers.X.limits)."""
    found: dict[str, Limits] = {}
    for provider in sorted((used | set(providers)) & set(kinds)):
        try:
            limits = kinds[provider].limits(providers.get(provider) or {})
        except (LimitsError, OSError) as exc:
            problems.append(
                source.problem(
                    ("providers", provider, "limits"), f"providers.{provider}.limits: {exc}"
                )
            )
            continue
        if limits is not None:
            found[provider] = limits
    return found
