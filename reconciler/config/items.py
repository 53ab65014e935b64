"""How a config item becomes a Desired record: the seam between config and the providers.

The loader knows the shape every finetune shares (name, provider, checks, versioning); what a
provider's item means (its account, its files, its fields) is the provider's to say, through
an `ItemKind` it offers in its package (providers/<name>/items.py). The loader is handed the
kinds by its caller, so config never imports a provider. The helpers below are what several
kinds share: the adapter's files from a folder, a Hub repo or URLs, the account id, the
pre-flight checks placed at the line they are about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from reconciler.base.errors import Problem
from reconciler.base.model import AssetFile, AssetSource, DesiredFinetune, SourceMark
from reconciler.sources.checked import is_loopback

if TYPE_CHECKING:  # the checks are imported where they run: a provider's spec, which the
    # command line reads at start-up, imports this module, and must stay light
    from reconciler.adapters.preflight import Limits
    from reconciler.config.yamlsource import Path_, Source
    from reconciler.state.statcache import StatCache

# providers whose API key is scoped to one organisation: no account id, one "account"
SINGLE_ACCOUNT = "default"
_ALLOW = "set settings.allow_external_assets: true to allow it"


@dataclass(frozen=True)
class AccountRule:
    """Where a provider's account id comes from and what one looks like."""

    variable: str  # the environment variable, e.g. CLOUDFLARE_ACCOUNT_ID
    pattern: str  # a regular expression an id must match in full
    shape: str  # what the message calls a well-formed id
    stand_in: str  # a well-formed id put in the place of an unset one (validate shows the rest)
    lower: bool = False  # ids compare lower-cased


@dataclass
class ItemContext:
    """One finetune of the config, as the provider's kind builds it."""

    source: Source
    where: Path_
    item: dict[str, Any]
    base: Path  # the config's folder
    env: Mapping[str, str]
    settings: Mapping[str, Any]  # providers.<name> in the config
    allow_external: bool
    mark: SourceMark
    problems: list[Problem]
    cache: StatCache | None
    limits: Limits | None
    notes: list[str] = field(default_factory=list)
    resolved: Path | None = None  # base, resolved once for the whole config (None: here)

    @property
    def name(self) -> str:
        return str(self.item["name"])

    @property
    def root(self) -> Path:
        """The config's folder, resolved: what a path must stay within."""
        return self.resolved if self.resolved is not None else self.base.resolve()

    def problem(self, key: Path_, message: str, *, key_mark: bool = False) -> None:
        self.problems.append(self.source.problem(key, message, key=key_mark))

    def warn(self, key: Path_, message: str) -> None:
        problem = self.source.problem(key, message)
        self.notes.append(str(problem).replace(": error: ", ": warning: ", 1))

    def versioning(self) -> str | None:
        """The finetune's own versioning, else settings.versioning; "none" is no versioning."""
        value = self.item.get("versioning") or (self.source.data.get("settings") or {}).get(
            "versioning"
        )
        return None if value in (None, "none") else str(value)


class ItemKind(Protocol):
    """What the config loader asks of a provider."""

    @property
    def account(self) -> AccountRule | None:
        """None: the provider's key is scoped to one account (SINGLE_ACCOUNT)."""

    def limits(self, settings: Mapping[str, Any]) -> Limits | None:
        """The limits an adapter is checked against: published ones with the config's
        overrides (providers.<name>, e.g. its `limits:`) on top; None if the provider has
        none. Raises LimitsError (or OSError) naming what is wrong."""

    def build(self, context: ItemContext) -> DesiredFinetune:
        """The Desired record of one item; problems go to context.problems."""


def account_id(context: ItemContext, rule: AccountRule) -> str:
    """The item's account: its own account_id, else the provider's, else the environment."""
    item, settings = context.item, context.settings
    account = item.get("account_id") or settings.get("account_id") or context.env.get(rule.variable)
    provider = item["provider"]
    if not account:
        context.problem(
            context.where,
            f"finetune '{context.name}': no {provider} account id; "
            f"set providers.{provider}.account_id in the config or {rule.variable} in the "
            "environment",
        )
    elif not re.fullmatch(rule.pattern, str(account)):
        context.problem(context.where, f"{rule.variable} is not {rule.shape}")
    return str(account or "").lower() if rule.lower else str(account or "")


def check_patterns(context: ItemContext) -> None:
    """Each check's `expect.matches` must compile."""
    from reconciler.config import schema

    for i, check in enumerate(context.item.get("checks") or ()):
        pattern = (check.get("expect") or {}).get("matches")
        if pattern is None:
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            key: Path_ = (*context.where, "checks", i, "expect", "matches")
            context.problem(
                key, f"{schema.display_path(key)}: not a valid regular expression ({exc})"
            )


def contained(context: ItemContext, key: Path_, label: str, target: Path) -> bool:
    """Refuse a path through a symlink or out of the project, unless the config allows it:
    an upload is one-way, and a link or a path elsewhere could send anything."""
    if context.allow_external:
        return True
    if _linked(target, context.base):
        context.problem(key, f"{label} is or passes through a symlink; {_ALLOW}")
        return False
    if not target.resolve().is_relative_to(context.root):
        context.problem(key, f"{label} is outside the project folder {context.root}; {_ALLOW}")
        return False
    return True


def _linked(folder: Path, base: Path) -> bool:
    """Whether any part of folder below base is a symlink."""
    probe = folder
    while probe != base and probe != probe.parent:
        if probe.is_symlink():
            return True
        probe = probe.parent
    return False


def adapter_assets(
    context: ItemContext, required: tuple[str, ...]
) -> tuple[Path | None, tuple[AssetFile, ...]]:
    """The adapter folder (None if unusable or remote) and the required files found in it.
    Files that are missing or malformed are the pre-flight checks' to report, with hints. An
    adapter from a source (hf:, files:) is read at plan time (sources/), never here."""
    key: Path_ = (*context.where, "adapter")
    adapter = context.item["adapter"]
    if isinstance(adapter, dict):
        return None, _remote_assets(context, key, required)
    folder = context.base / adapter
    label = f"finetune '{context.name}': adapter folder {adapter}"
    if not contained(context, key, label, folder):
        return None, ()
    if not folder.exists():
        context.problem(key, f"{label} does not exist")
        return None, ()
    if not folder.is_dir():
        context.problem(key, f"{label} is not a folder")
        return None, ()
    return folder, tuple(_local_files(context, key, label, folder, required))


def _local_files(
    context: ItemContext, key: Path_, label: str, folder: Path, required: tuple[str, ...]
) -> list[AssetFile]:
    assets: list[AssetFile] = []
    for name in required:
        file = folder / name
        if file.is_symlink() and not context.allow_external:
            context.problem(key, f"{label}: {name} is a symlink; {_ALLOW}")
            continue
        if not file.is_file():
            continue
        try:
            with file.open("rb"):
                pass
        except OSError as exc:
            context.problem(key, f"{label}: {name} cannot be read ({exc.strerror})")
            continue
        assets.append(AssetFile(name=name, path=file))
    return assets


def _remote_assets(
    context: ItemContext, key: Path_, required: tuple[str, ...]
) -> tuple[AssetFile, ...]:
    """The required files of an adapter at a Hub repo or at URLs, each with its source and a
    stand-in path naming it (the key of its digest): <config dir>/hf:REPO@REVISION/NAME."""
    adapter = context.item["adapter"]
    if "hf" in adapter:
        revision = adapter.get("revision") or "main"
        subfolder = adapter.get("subfolder")
        spec = AssetSource("hf", adapter["hf"], revision, subfolder)
        folder = context.base / f"hf:{adapter['hf']}@{revision}" / (subfolder or "")
        return tuple(AssetFile(n, folder / n, source=spec) for n in required)
    files: dict[str, Any] = adapter["files"]
    label = f"finetune '{context.name}': adapter.files"
    for name in sorted(set(files) - set(required)):
        context.problem(
            (*key, "files", name),
            f"{label}: {name} is not a file the provider takes; it takes {', '.join(required)}",
            key_mark=True,
        )
    assets: list[AssetFile] = []
    for name in required:
        entry = files.get(name)
        if entry is None:
            context.problem((*key, "files"), f"{label}: {name} is missing")
            continue
        url, sha = entry["url"], "sha256:" + entry["sha256"].removeprefix("sha256:")
        if not url_allowed(url):
            context.problem(
                (*key, "files", name, "url"),
                f"{label}.{name}.url: plain http:// is refused except to a loopback "
                "address (the bytes could be changed on the way): use https://",
            )
            continue
        spec = AssetSource("url", url, sha256=sha)
        assets.append(AssetFile(name, context.base / f"url:{sha[7:23]}" / name, source=spec))
    return tuple(assets)


def url_allowed(url: str) -> bool:
    """https to any host; plain http only to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and bool(parts.hostname) and is_loopback(parts.hostname or "")


def adapter_checks(context: ItemContext, desired: DesiredFinetune, folder: Path | None) -> None:
    """The model notes and, for a local folder, the adapter pre-flight checks, placed at the
    line of the key they are about."""
    from reconciler.adapters.preflight import check_adapter, model_notes
    from reconciler.sources.local import LocalSource

    limits = context.limits
    if limits is None:
        return
    for message in model_notes(desired, limits):
        context.warn((*context.where, "model"), f"finetune '{desired.name}': {message}")
    if folder is None:
        return
    prefix = str(context.item["adapter"]).rstrip("/")
    for message in check_adapter(desired, LocalSource(folder, context.cache), limits):
        if message.split(":", 1)[0] in limits.required_files or message.startswith("the adapter"):
            key: Path_ = (*context.where, "adapter")
            context.problem(key, f"finetune '{desired.name}': {prefix}/{message}")
        else:
            context.problem((*context.where, "model"), f"finetune '{desired.name}': {message}")
