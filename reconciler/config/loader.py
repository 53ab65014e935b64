"""finetunes.yaml -> Desired: parse with line marks, interpolate ${ENV}, validate, resolve files.

Every problem is collected and reported at once; nothing here talks to a network.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.adapters.preflight import Limits, LimitsError, check_finetune, model_notes
from reconciler.base.credentials import secret_variables
from reconciler.base.errors import ConfigError, Problem
from reconciler.base.model import AssetFile, AssetSource, Desired, DesiredFinetune, SourceMark
from reconciler.config import schema
from reconciler.config.interpolate import expand, references
from reconciler.config.yamlsource import Path_, Source, parse, read_text
from reconciler.providers.registry import required_assets
from reconciler.state.statcache import StatCache

ACCOUNT_ENV = {"cloudflare": "CLOUDFLARE_ACCOUNT_ID"}
MAX_CONFIG_BYTES = 10_000_000  # 1,000 finetunes take about 200 kB
# providers whose API key is scoped to one organisation: no account id, one "account"
SINGLE_ACCOUNT = "default"
# providers whose limits are published as data (reconciler/data/<provider>.json)
LIMITED = ("cloudflare",)


SCHEMA_FACT = "schema-passed"  # in the stat cache: schema.token() of a text found valid


def lockfile_path(config_path: Path) -> Path:
    return config_path.with_suffix(".lock")


def load(path: Path, env: Mapping[str, str], cache: StatCache | None = None) -> Desired:
    """Read and validate the config; raises ConfigError with every problem found.

    `cache`: what the adapter checks read from each file is kept there, keyed by its stat,
    so an unchanged adapter is not read again (the caller saves the cache)."""
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
    if problems and not (clean and len(problems) == interpolated and _stand_in(source, unresolved)):
        raise ConfigError(problems)
    desired = _build(source, path, env, problems, cache)
    if problems:
        raise ConfigError(problems)
    return desired


def _stand_in(source: Source, unresolved: set[Path_]) -> bool:
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
        node[path[-1]] = "0" * 32
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
    cache: StatCache | None = None,
) -> Desired:
    data = source.data
    base = path.parent
    providers = data.get("providers") or {}
    allow_external = bool((data.get("settings") or {}).get("allow_external_assets", False))
    limits = _limits(
        source, providers, {item["provider"] for item in data.get("finetunes") or []}, problems
    )
    seen: dict[str, int] = {}
    notes: list[str] = []
    finetunes: list[DesiredFinetune] = []
    accounts: dict[str, set[str]] = {}
    for i, item in enumerate(data.get("finetunes") or []):
        where: Path_ = ("finetunes", i)
        name = item["name"]
        if name in seen:
            first = source.mark(("finetunes", seen[name], "name"))
            problems.append(
                source.problem(
                    (*where, "name"),
                    f"duplicate finetune name '{name}' "
                    f"(first declared at line {first[0] if first else '?'})",
                )
            )
            continue
        seen[name] = i
        provider = item["provider"]
        line, column = source.mark(where) or (0, 0)
        mark = SourceMark(source.file, line, column)
        if provider == "cohere":
            desired = _cohere(source, where, item, base, allow_external, mark, problems)
        else:
            account = _account(
                source, where, item, providers.get(provider) or {}, provider, env, problems
            )
            folder, assets = _assets(source, where, item, base, provider, problems, allow_external)
            description = item.get("description") or None
            public = bool(item.get("public", False))
            desired = DesiredFinetune(
                name=name,
                provider=provider,
                account=account,
                model=item["model"],
                description=description,
                public=public,
                assets=assets,
                mark=mark,
                fields={"model": item["model"], "description": description, "public": public},
                checks=tuple(item.get("checks") or ()),
                versioning=_versioning(item, data),
                keep=item.get("keep"),
            )
            _check_patterns(source, where, item, problems)
            if provider in limits:
                notes += [
                    _warning(source, (*where, "model"), f"finetune '{name}': {m}")
                    for m in model_notes(desired, limits[provider])
                ]
            if folder is not None and provider in limits:
                _preflight(source, where, item, desired, folder, limits[provider], problems, cache)
        if desired.keep is not None and desired.versioning is None:
            problems.append(
                source.problem(
                    (*where, "keep"),
                    f"finetune '{name}': keep only applies to versions; add versioning: content "
                    "(or settings.versioning: content)",
                )
            )
        finetunes.append(desired)
        if desired.account:
            accounts.setdefault(provider, set()).add(desired.account)
    for provider, settings in providers.items():
        if provider in ACCOUNT_ENV and (settings or {}).get("account_id"):
            accounts.setdefault(provider, set()).add(settings["account_id"].lower())
        elif provider not in ACCOUNT_ENV:
            accounts.setdefault(provider, set()).add(SINGLE_ACCOUNT)
    return Desired(
        config_path=path,
        finetunes=tuple(finetunes),
        accounts={p: tuple(sorted(a)) for p, a in sorted(accounts.items())},
        limits=limits,
        prune=bool((data.get("settings") or {}).get("prune", False)),
        warnings=tuple(notes),
        ignore={
            p: tuple((settings or {}).get("ignore") or ())
            for p, settings in sorted(providers.items())
            if (settings or {}).get("ignore")
        },
        outputs=tuple(o["path"] for o in data.get("outputs") or ()),
    )


def _versioning(item: dict[str, Any], data: dict[str, Any]) -> str | None:
    """The finetune's own versioning, else settings.versioning; "none" is no versioning."""
    value = item.get("versioning") or (data.get("settings") or {}).get("versioning")
    return None if value in (None, "none") else str(value)


def _warning(source: Source, where: Path_, message: str) -> str:
    problem = source.problem(where, message)
    return str(problem).replace(": error: ", ": warning: ", 1)


def _check_patterns(
    source: Source, where: Path_, item: dict[str, Any], problems: list[Problem]
) -> None:
    for i, check in enumerate(item.get("checks") or ()):
        pattern = (check.get("expect") or {}).get("matches")
        if pattern is None:
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            key: Path_ = (*where, "checks", i, "expect", "matches")
            problems.append(
                source.problem(
                    key, f"{schema.display_path(key)}: not a valid regular expression ({exc})"
                )
            )


def _cohere(
    source: Source,
    where: Path_,
    item: dict[str, Any],
    base: Path,
    allow_external: bool,
    mark: SourceMark,
    problems: list[Problem],
) -> DesiredFinetune:
    """A Cohere finetune: trained from a dataset file; its base model and hyperparameters are
    the fields a plan compares (only those declared: Cohere fills in defaults)."""
    dataset = item["dataset"]
    key: Path_ = (*where, "dataset", "path")
    label = f"finetune '{item['name']}': dataset {dataset['path']}"
    path = base / dataset["path"]
    assets: tuple[AssetFile, ...] = ()
    if _contained(source, key, label, path, base, allow_external, problems):
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            problems.append(source.problem(key, f"{label} {what}"))
        else:
            try:
                with path.open("rb") as f:
                    empty = not f.read(1)
            except OSError as exc:
                problems.append(source.problem(key, f"{label} cannot be read ({exc.strerror})"))
            else:
                if empty:
                    problems.append(source.problem(key, f"{label} is empty"))
                else:
                    assets = (AssetFile(name="dataset", path=path, kind=dataset["type"]),)
    base_model = item["base_model"]
    model = base_model["base_type"] + (f"/{base_model['name']}" if base_model.get("name") else "")
    return DesiredFinetune(
        name=item["name"],
        provider="cohere",
        account=SINGLE_ACCOUNT,
        model=model,
        description=None,
        public=False,
        assets=assets,
        mark=mark,
        fields={
            "base_model": dict(base_model),
            "hyperparameters": dict(item.get("hyperparameters") or {}),
        },
        prevent_destroy=bool(item.get("prevent_destroy", False)),
        previous_name=item.get("previous_name"),
        versioning=_versioning(item, source.data),
        keep=item.get("keep"),
    )


def _contained(
    source: Source,
    key: Path_,
    label: str,
    target: Path,
    base: Path,
    allow_external: bool,
    problems: list[Problem],
) -> bool:
    """Refuse a path through a symlink or out of the project, unless the config allows it:
    an upload is one-way, and a link or a path elsewhere could send anything."""
    if allow_external:
        return True
    allow = "set settings.allow_external_assets: true to allow it"
    if _linked(target, base):
        problems.append(source.problem(key, f"{label} is or passes through a symlink; {allow}"))
        return False
    if not target.resolve().is_relative_to(base.resolve()):
        problems.append(
            source.problem(key, f"{label} is outside the project folder {base.resolve()}; {allow}")
        )
        return False
    return True


def _limits(
    source: Source, providers: dict[str, Any], used: set[str], problems: list[Problem]
) -> dict[str, Limits]:
    """Each provider's published limits with the config's overrides (providers.X.limits)."""
    found: dict[str, Limits] = {}
    for provider in sorted((used | set(providers)) & set(LIMITED)):
        overrides = (providers.get(provider) or {}).get("limits")
        try:
            found[provider] = Limits.published(provider, overrides)
        except (LimitsError, FileNotFoundError) as exc:
            problems.append(
                source.problem(
                    ("providers", provider, "limits"), f"providers.{provider}.limits: {exc}"
                )
            )
    return found


def _account(
    source: Source,
    where: Path_,
    item: dict[str, Any],
    settings: dict[str, Any],
    provider: str,
    env: Mapping[str, str],
    problems: list[Problem],
) -> str:
    variable = ACCOUNT_ENV[provider]
    account = item.get("account_id") or settings.get("account_id") or env.get(variable, "")
    if not account:
        problems.append(
            source.problem(
                where,
                f"finetune '{item['name']}': no {provider} account id; "
                f"set providers.{provider}.account_id "
                f"in the config or {variable} in the environment",
            )
        )
    elif not re.fullmatch(r"[0-9a-fA-F]{32}", account):
        problems.append(source.problem(where, f"{variable} is not a 32-hex-character account id"))
    return str(account).lower()


def _assets(
    source: Source,
    where: Path_,
    item: dict[str, Any],
    base: Path,
    provider: str,
    problems: list[Problem],
    allow_external: bool,
) -> tuple[Path | None, tuple[AssetFile, ...]]:
    """The adapter folder (None if unusable) and the required files found in it. Files that
    are missing or malformed are the pre-flight checks' to report, with hints. An adapter
    from a source (hf:, files:) is read at plan time (sources/), never here."""
    key: Path_ = (*where, "adapter")
    if isinstance(item["adapter"], dict):
        return None, _remote_assets(source, key, item, base, provider, problems)
    folder = base / item["adapter"]
    label = f"finetune '{item['name']}': adapter folder {item['adapter']}"
    allow = "set settings.allow_external_assets: true to allow it"
    if not _contained(source, key, label, folder, base, allow_external, problems):
        return None, ()
    if not folder.exists():
        problems.append(source.problem(key, f"{label} does not exist"))
        return None, ()
    if not folder.is_dir():
        problems.append(source.problem(key, f"{label} is not a folder"))
        return None, ()
    assets: list[AssetFile] = []
    for name in required_assets(provider):
        file = folder / name
        if file.is_symlink() and not allow_external:
            problems.append(source.problem(key, f"{label}: {name} is a symlink; {allow}"))
            continue
        if not file.is_file():
            continue
        try:
            with file.open("rb"):
                pass
        except OSError as exc:
            problems.append(source.problem(key, f"{label}: {name} cannot be read ({exc.strerror})"))
            continue
        assets.append(AssetFile(name=name, path=file))
    return folder, tuple(assets)


def _remote_assets(
    source: Source,
    key: Path_,
    item: dict[str, Any],
    base: Path,
    provider: str,
    problems: list[Problem],
) -> tuple[AssetFile, ...]:
    """The required files of an adapter at a Hub repo or at URLs, each with its source and a
    stand-in path naming it (the key of its digest): <config dir>/hf:REPO@REVISION/NAME."""
    adapter = item["adapter"]
    required = required_assets(provider)
    if "hf" in adapter:
        revision = adapter.get("revision") or "main"
        subfolder = adapter.get("subfolder")
        spec = AssetSource("hf", adapter["hf"], revision, subfolder)
        folder = base / f"hf:{adapter['hf']}@{revision}" / (subfolder or "")
        return tuple(AssetFile(n, folder / n, source=spec) for n in required)
    files: dict[str, Any] = adapter["files"]
    label = f"finetune '{item['name']}': adapter.files"
    assets: list[AssetFile] = []
    for name in sorted(set(files) - set(required)):
        problems.append(
            source.problem(
                (*key, "files", name),
                f"{label}: {name} is not a file the provider takes; it takes {', '.join(required)}",
                key=True,
            )
        )
    for name in required:
        entry = files.get(name)
        if entry is None:
            problems.append(source.problem((*key, "files"), f"{label}: {name} is missing"))
            continue
        url, sha = entry["url"], "sha256:" + entry["sha256"].removeprefix("sha256:")
        if not _url_allowed(url):
            problems.append(
                source.problem(
                    (*key, "files", name, "url"),
                    f"{label}.{name}.url: plain http:// is refused except to a loopback "
                    "address (the bytes could be changed on the way): use https://",
                )
            )
            continue
        spec = AssetSource("url", url, sha256=sha)
        assets.append(AssetFile(name, base / f"url:{sha[7:23]}" / name, source=spec))
    return tuple(assets)


def _url_allowed(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    host = (parts.hostname or "").lower()
    if parts.scheme != "http" or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _preflight(
    source: Source,
    where: Path_,
    item: dict[str, Any],
    desired: DesiredFinetune,
    folder: Path,
    limits: Limits,
    problems: list[Problem],
    cache: StatCache | None = None,
) -> None:
    """The adapter checks (preflight.py), placed at the line of the key they are about."""
    prefix = item["adapter"].rstrip("/")
    for message in check_finetune(desired, folder, limits, cache):
        if message.split(":", 1)[0] in limits.required_files or message.startswith("the adapter"):
            problems.append(
                source.problem(
                    (*where, "adapter"), f"finetune '{desired.name}': {prefix}/{message}"
                )
            )
        else:
            problems.append(
                source.problem((*where, "model"), f"finetune '{desired.name}': {message}")
            )


def _linked(folder: Path, base: Path) -> bool:
    """Whether any part of folder below base is a symlink."""
    probe = folder
    while probe != base and probe != probe.parent:
        if probe.is_symlink():
            return True
        probe = probe.parent
    return False
