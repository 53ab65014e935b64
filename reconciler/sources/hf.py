"""A model repo on the Hugging Face Hub (or on HF_ENDPOINT's Hub) as a source, through
`huggingface_hub` (the optional extra finetune-reconciler[hf]): HF_TOKEN or the cached login,
HF_ENDPOINT, HF_HUB_OFFLINE and the shared cache all work as they do for every HF tool.

Plan reads metadata, never weights:
  - a tag or branch -> its commit: one refs call (a branch warns: it moves);
  - the files at the commit, with size and the LFS sha256: one model_info(files_metadata)
    call, kept per commit (immutable) under the project's sources/hf/;
  - adapter_config.json (small, not in LFS, so no sha256 in the metadata): downloaded once per
    commit into the HF cache, its sha256 and what the checks need kept with the commit;
  - the safetensors header: two Range reads (the 8-byte length, then the header), kept too.
A cold plan reads well under 1 MB per adapter; a warm one reads nothing of a pinned commit
(a tag or branch still costs its refs call, to see whether it moved).

Offline (HF_HUB_OFFLINE=1): nothing is sent. A commit whose metadata is kept plans as online;
a tag or branch is taken as the commit it named at the last online plan, with a warning;
apply takes the files from the HF cache, and fails naming each one that is not there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from reconciler.sources.base import (
    Context,
    Fetched,
    HeadReader,
    Resolved,
    SourceError,
    SourceFile,
    is_true,
)
from reconciler.sources.facts import Facts

DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT = re.compile(r"[0-9a-f]{40}")
SHORT = 7  # a commit as plans show it: hf://acme/support-lora@3f2a91c
CHUNK = 256 * 1024
EXTRA = "finetune-reconciler[hf]"
FACTS_VERSION = 1


def _hub() -> Any:
    """huggingface_hub, imported on first use (a second on a cold start): only configs that
    name an hf: adapter pay for it, and only they need the extra installed."""
    try:
        import huggingface_hub
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        raise SourceError(
            "an adapter from the Hugging Face Hub (hf:) needs huggingface_hub: "
            f"pip install '{EXTRA}'"
        ) from None
    disable_progress_bars()  # a plan's output is the plan, not download bars on stderr
    return huggingface_hub


def endpoint(env: Mapping[str, str]) -> str:
    return (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def label(repo: str, commit: str) -> str:
    return f"hf://{repo}@{commit[:SHORT]}"


class HfSource(Fetched):
    def __init__(
        self, repo: str, revision: str | None, subfolder: str | None, ctx: Context
    ) -> None:
        self.repo = repo
        self.revision = revision or "main"
        self.subfolder = (subfolder or "").strip("/")
        self.ctx = ctx
        self.endpoint = endpoint(ctx.env)
        token = ctx.env.get("HF_TOKEN")
        # set: that token; set but empty: none at all (the sandbox); unset: the cached login
        self.token: str | bool | None = token if token else (False if token == "" else None)
        self.offline = is_true(ctx.env.get("HF_HUB_OFFLINE"))
        # the shared HF cache, as every HF tool finds it; None: huggingface_hub's default
        home = ctx.env.get("HF_HOME")
        self.hf_cache = ctx.env.get("HF_HUB_CACHE") or (str(Path(home) / "hub") if home else None)
        where = urlsplit(self.endpoint)
        host = re.sub(r"[^A-Za-z0-9._-]", "_", f"{where.hostname}_{where.port or ''}{where.path}")
        self._root = ctx.project.sources / "hf" / host / repo
        self.commit: str | None = None
        self._facts: Facts | None = None
        self._heads: dict[str, bytes] = {}
        self._resolved: Resolved | None = None

    @property
    def where(self) -> str:
        """The repo and revision as declared, for messages."""
        return f"hf://{self.repo}@{self.revision}"

    def _path(self, name: str) -> str:
        return f"{self.subfolder}/{name}" if self.subfolder else name

    def _label(self, name: str) -> str:
        assert self.commit is not None
        return f"hf://{self.repo}@{self.commit}/{self._path(name)}"

    # the Source protocol

    def resolve(self) -> Resolved:
        commit, warnings = self._commit()
        self.commit = commit
        facts = self._facts = Facts(self._root / f"{commit}.json", self.ctx.project.root)
        files = facts.get("files")
        if not isinstance(files, dict) or facts.get("version") != FACTS_VERSION:
            files = self._listing(commit)
            facts.put(FACTS_VERSION, "version")
            facts.put(files, "files")
            facts.save()
        prefix = f"{self.subfolder}/" if self.subfolder else ""
        found = {}
        for path, f in files.items():
            name = path[len(prefix) :]
            if path.startswith(prefix) and "/" not in name:
                sha = f.get("sha256") or facts.get("sha256", path)
                found[name] = SourceFile(
                    name, int(f["size"]), f"sha256:{sha}" if sha else None, self._label(name)
                )
        if not found:
            where = f"its folder {self.subfolder}" if self.subfolder else "it"
            warnings.append(f"{self.where} ({commit[:SHORT]}): {where} holds no file")
        self._resolved = Resolved(label(self.repo, commit), found, commit, tuple(warnings))
        return self._resolved

    def digest(self, name: str) -> str:
        """The sha256 of a file the metadata gives none for (not in LFS: a config), from one
        download per commit into the HF cache; kept with the commit."""
        facts = self._need_facts()
        path = self._path(name)
        known = facts.get("sha256", path)
        if isinstance(known, str):
            return "sha256:" + known
        h = hashlib.sha256()
        with self.fetch(name).open("rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        facts.put(h.hexdigest(), "sha256", path)
        facts.save()
        return "sha256:" + h.hexdigest()

    def fetch(self, name: str) -> Path:
        """The file at the resolved commit in the HF cache, downloaded there if it is not
        (huggingface_hub checks its size; whoever reads it checks its sha256)."""
        assert self.commit is not None, "resolve() first"
        hub = _hub()
        try:
            found = hub.hf_hub_download(
                self.repo,
                name,
                subfolder=self.subfolder or None,
                revision=self.commit,
                endpoint=self.endpoint,
                token=self.token,
                cache_dir=self.hf_cache,
                local_files_only=self.offline,
            )
        except Exception as exc:
            raise self._error(exc, name) from None
        return Path(found)

    # what preflight.check_adapter reads (preflight.AdapterFiles)

    def names(self) -> Collection[str]:
        return list(self.resolve_cached().files)

    def entry(self, name: str) -> tuple[int, str | None]:
        return self.resolve_cached().files[name].size, None

    def config(self, name: str) -> dict[str, Any]:
        from reconciler.adapters.preflight import CONFIG_FACT, parse_config

        facts = self._need_facts()
        known = facts.get(CONFIG_FACT, self._path(name))
        if isinstance(known, dict):
            return known
        found = parse_config(self.fetch(name).read_bytes())
        facts.put(found, CONFIG_FACT, self._path(name))
        facts.save()
        return found

    def weights(self, name: str) -> dict[str, Any]:
        from reconciler.adapters.preflight import WEIGHTS_FACT, weights_summary

        facts = self._need_facts()
        known = facts.get(WEIGHTS_FACT, self._path(name))
        if isinstance(known, dict) and isinstance(known.get("problems"), list):
            return known
        size = self.resolve_cached().files[name].size
        found = weights_summary(cast(BinaryIO, HeadReader(self, name)), size)
        facts.put(found, WEIGHTS_FACT, self._path(name))
        facts.save()
        return found

    def resolve_cached(self) -> Resolved:
        return self._resolved if self._resolved is not None else self.resolve()

    # the Hub

    def _need_facts(self) -> Facts:
        if self._facts is None:
            self.resolve_cached()
        assert self._facts is not None
        return self._facts

    def _commit(self) -> tuple[str, list[str]]:
        """The commit the declared revision names now, and what to warn about it."""
        refs = Facts(self._root / "refs.json", self.ctx.project.root)
        if COMMIT.fullmatch(self.revision):
            return self.revision, []
        if re.fullmatch(r"[0-9a-f]{7,39}", self.revision):
            raise SourceError(
                f"{self.where}: a commit is pinned by its full 40-hex sha, not an abbreviation"
            )
        if self.offline:
            seen = refs.get(self.revision)
            if not isinstance(seen, dict) or not COMMIT.fullmatch(str(seen.get("commit"))):
                raise SourceError(
                    f"{self.where}: HF_HUB_OFFLINE is set and the {self.revision} revision was "
                    "never resolved online here: plan once online, or pin a 40-hex commit"
                )
            last = str(seen["commit"])
            return last, [
                f"{self.where}: HF_HUB_OFFLINE is set: {seen.get('kind', 'revision')} "
                f"{self.revision} taken as {last[:SHORT]}, the commit it named on "
                f"{seen.get('seen', '?')}; it may have moved since"
            ]
        api = _hub().HfApi(endpoint=self.endpoint, token=self.token)
        try:
            listed = api.list_repo_refs(self.repo)
        except Exception as exc:
            raise self._error(exc) from None
        kind: str | None = None
        commit: str | None = None
        for ref in listed.tags:
            if ref.name == self.revision:
                kind, commit = "tag", ref.target_commit
        for ref in listed.branches:
            if commit is None and ref.name == self.revision:
                kind, commit = "branch", ref.target_commit
        if commit is None:
            raise SourceError(
                f"{self.where}: the repo has no tag or branch {self.revision} (tags: "
                f"{', '.join(r.name for r in listed.tags) or 'none'}; branches: "
                f"{', '.join(r.name for r in listed.branches) or 'none'})"
            )
        today = datetime.now(timezone.utc).date().isoformat()
        refs.put({"commit": commit, "kind": kind, "seen": today}, self.revision)
        refs.save()
        warnings = []
        if kind == "branch":
            warnings.append(
                f"{self.where}: {self.revision} is a branch, and a branch moves: pin a commit "
                f"or tag (it names {commit[:SHORT]} now)"
            )
        return commit, warnings

    def _listing(self, commit: str) -> dict[str, dict[str, Any]]:
        if self.offline:
            raise SourceError(
                f"{self.where}: HF_HUB_OFFLINE is set and the files of commit {commit[:SHORT]} "
                "were never listed here: plan once online"
            )
        api = _hub().HfApi(endpoint=self.endpoint, token=self.token)
        try:
            info = api.model_info(self.repo, revision=commit, files_metadata=True)
        except Exception as exc:
            raise self._error(exc) from None
        if info.sha != commit:
            raise SourceError(f"{self.where}: the Hub answered for commit {info.sha}, not {commit}")
        files: dict[str, dict[str, Any]] = {}
        for s in info.siblings or ():
            if s.size is None:
                raise SourceError(f"{self.where}: the Hub gave no size for {s.rfilename}")
            files[s.rfilename] = {
                "size": s.size,
                "sha256": s.lfs.sha256 if s.lfs is not None else None,
            }
        return files

    def _range(self, name: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file at the commit: one Range request, read no further
        than asked even if the server ignores the Range and sends the whole file."""
        if self.offline:
            return self._cached_range(name, start, end)
        hub = _hub()
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff

        assert self.commit is not None
        url = hub.hf_hub_url(
            self.repo, self._path(name), revision=self.commit, endpoint=self.endpoint
        )
        headers = build_hf_headers(token=self.token)
        headers["Range"] = f"bytes={start}-{end - 1}"
        headers["Accept-Encoding"] = "identity"
        got = bytearray()
        try:
            with http_stream_backoff("GET", url, headers=headers, max_retries=2) as response:
                hf_raise_for_status(response)
                skip = start if response.status_code == 200 else 0  # Range ignored
                for chunk in response.iter_bytes(CHUNK):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    got += chunk[: end - start - len(got)]
                    if len(got) >= end - start:
                        break
        except SourceError:
            raise
        except Exception as exc:
            raise self._error(exc, name) from None
        return bytes(got)

    def _cached_range(self, name: str, start: int, end: int) -> bytes:
        try:
            with self.fetch(name).open("rb") as f:
                f.seek(start)
                return f.read(end - start)
        except OSError as exc:
            raise SourceError(f"{self._label(name)}: cannot be read ({exc})") from None

    def _error(self, exc: Exception, name: str | None = None) -> SourceError:
        """A Hub error as one line naming the repo, revision and file; never a token."""
        if isinstance(exc, SourceError):
            return exc
        what = self._label(name) if name and self.commit else self.where
        kind = type(exc).__name__
        if kind == "RepositoryNotFoundError":
            return SourceError(
                f"{what}: no such repo at {self.endpoint} (or it is private or gated and "
                "HF_TOKEN, or the cached login, gives no access to it)"
            )
        if kind == "GatedRepoError":
            return SourceError(f"{what}: the repo is gated: ask for access on the Hub")
        if kind == "RevisionNotFoundError":
            return SourceError(f"{what}: the repo has no revision {self.revision}")
        if kind in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
            return SourceError(f"{what}: no such file in the repo at that revision")
        if kind in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
            return SourceError(
                f"{what}: HF_HUB_OFFLINE is set and the file is not in the Hugging Face cache: "
                "run once online, or unset HF_HUB_OFFLINE"
            )
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status is not None:
            return SourceError(f"{what}: the Hub at {self.endpoint} answered HTTP {status}")
        return SourceError(f"{what}: cannot reach the Hub at {self.endpoint} ({kind})")
