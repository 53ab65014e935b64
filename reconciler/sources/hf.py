"""A model repo on the Hugging Face Hub (or on HF_ENDPOINT's Hub) as a source, through
`huggingface_hub` (the optional extra finetune-reconciler[hf]): HF_TOKEN or the cached login,
HF_ENDPOINT, HF_HUB_OFFLINE and the shared cache all work as they do for every HF tool.

Plan reads metadata, never weights:
  - a tag, branch or pull request (refs/pr/N) -> its commit: one refs call (a branch or a
    pull request warns: it moves);
  - the files at the commit, with size and the LFS sha256: one model_info(files_metadata)
    call, kept per commit (immutable) under the project's sources/hf/;
  - adapter_config.json (small, not in LFS, so no sha256 in the metadata): downloaded once per
    commit into the HF cache, its sha256 and what the checks need kept with the commit;
  - the safetensors header: two Range reads (the 8-byte length, then the header), kept too.
Every value the Hub gives is checked where it enters (sources.checked: a commit before it
names a file or reaches the lock, each sha256, size, blob id and file name), every answer
huggingface_hub reads for it is bounded (sources.bounded: size, deadline, redirects), and a
file taken from the shared HF cache is held to the listed blob id or sha256 first: the cache
is shared by every project and every HF_ENDPOINT, and keyed by neither.
A cold plan reads well under 1 MB per adapter; a warm one reads nothing of a pinned commit
(a tag or branch still costs its refs call, to see whether it moved).

Offline (HF_HUB_OFFLINE=1): nothing is sent. A commit whose metadata is kept plans as online;
a tag or branch is taken as the commit it named at the last online plan, with a warning;
apply takes the files from the HF cache, and fails naming each one that is not there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from reconciler.base.credentials import token_problem, url_problem
from reconciler.base.labels import shown
from reconciler.sources import checked
from reconciler.sources.base import (
    Context,
    Fetched,
    HeadReader,
    Resolved,
    SourceError,
    SourceFile,
    hashed,
    is_true,
)
from reconciler.sources.bounded import JSON_LIMIT, bounded, install
from reconciler.sources.facts import Facts

DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT = checked.COMMIT
SHORT = 7  # a commit as plans show it: hf://acme/support-lora@3f2a91c
CHUNK = 256 * 1024
EXTRA = "finetune-reconciler[hf]"
FACTS_VERSION = 2  # 2: each file's git blob id kept, to hold cached bytes to


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
    install(huggingface_hub)  # every answer it reads bounded: sources.bounded
    return huggingface_hub


def endpoint(env: Mapping[str, str]) -> str:
    return (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def endpoint_key(endpoint: str) -> str:
    """The folder of what was learnt from one Hub: its host, port and path, so a commit seen
    at one Hub is never taken for the same sha at another; but a loopback Hub (the sandbox,
    on a new port each run) without its port, or its facts would never be warm again."""
    where = urlsplit(endpoint)
    host = where.hostname or ""
    port = "loopback" if checked.is_loopback(host) else f"{host}_{where.port or ''}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{port}{where.path}")


def _matches(path: Path, listed: tuple[str, str]) -> bool:
    kind, value = listed
    return (git_blob_id(path) if kind == "git blob" else hashed(path)[1]) == value


def git_blob_id(path: Path) -> str:
    """A file's git blob id, as the Hub lists it (blobId): sha1 of "blob <size>\0" + bytes."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


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
        # refused by name before anything is sent: a token with a line break would be refused
        # by the HTTP library with the header in its message; credentials in HF_ENDPOINT would
        # be shown with every error that names it
        problem = (token_problem("HF_TOKEN", token) if token else None) or url_problem(
            "HF_ENDPOINT", self.endpoint, "HF_TOKEN"
        )
        if problem:
            raise SourceError(f"hf://{repo}: {problem}")
        # set: that token; set but empty: none at all (the sandbox); unset: the cached login
        self.token: str | bool | None = token if token else (False if token == "" else None)
        self.offline = is_true(ctx.env.get("HF_HUB_OFFLINE"))
        # the shared HF cache, as every HF tool finds it; None: huggingface_hub's default
        home = ctx.env.get("HF_HOME")
        self.hf_cache = ctx.env.get("HF_HUB_CACHE") or (str(Path(home) / "hub") if home else None)
        self._root = ctx.project.sources / "hf" / endpoint_key(self.endpoint) / repo
        self.commit: str | None = None
        self._facts: Facts | None = None
        self._heads: dict[str, bytes] = {}
        self._resolved: Resolved | None = None
        self._verified: set[str] = set()  # files in the HF cache held to the listing here

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
        files = self._kept(facts)
        if files is None:
            files = self._listing(commit)
            facts.put(FACTS_VERSION, "version")
            facts.put(files, "files")
            facts.save()
        prefix = f"{self.subfolder}/" if self.subfolder else ""
        found = {}
        for path, f in files.items():
            name = path[len(prefix) :]
            if path.startswith(prefix) and "/" not in name:
                sha = f.get("sha256") or self._kept_sha256(facts, path)
                found[name] = SourceFile(
                    name, f["size"], f"sha256:{sha}" if sha else None, self._label(name)
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
        known = self._kept_sha256(facts, path)
        if known is not None:
            return "sha256:" + known
        h = hashlib.sha256()
        with self.fetch(name).open("rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        facts.put(h.hexdigest(), "sha256", path)
        facts.save()
        return "sha256:" + h.hexdigest()

    def fetch(self, name: str) -> Path:
        """The file at the resolved commit in the HF cache, downloaded there if it is not,
        and held to the Hub's blobId before it is used: the HF cache is shared, by every
        project and every HF_ENDPOINT, and a commit's files in it are taken as they are
        (huggingface_hub checks a download's size, never its bytes). Bytes that are not the
        listed ones are downloaded again, once; offline, or again wrong, SourceError."""
        assert self.commit is not None, "resolve() first"
        found = self._download(name, force=False)
        if name in self._verified:
            return found
        listed = self._listed(name)
        if listed is not None and not _matches(found, listed):
            if not self.offline:
                # huggingface_hub keeps a commit's file as it finds it, even when forced: the
                # wrong one goes first (it is wrong for every project that shares the cache)
                found.unlink(missing_ok=True)
                found = self._download(name, force=True)
            if self.offline or not _matches(found, listed):
                raise SourceError(
                    f"{self._label(name)}: the file in the Hugging Face cache "
                    f"({shown(str(found))}) is not the bytes the Hub lists for it "
                    f"({listed[0]} {listed[1][:12]}…): delete it from the cache and plan "
                    "again online"
                )
        self._verified.add(name)
        return found

    def _download(self, name: str, *, force: bool) -> Path:
        hub = _hub()
        try:
            with self._bounded(self.resolve_cached().files[name].size, name):
                found = hub.hf_hub_download(
                    self.repo,
                    name,
                    subfolder=self.subfolder or None,
                    revision=self.commit,
                    endpoint=self.endpoint,
                    token=self.token,
                    cache_dir=self.hf_cache,
                    local_files_only=self.offline,
                    force_download=force,
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
        kind, found = self._named()
        # checked here, where it enters: it names the facts file and reaches the lock
        commit = checked.commit(found, f"{self.where}: the {kind} {self.revision}")
        today = datetime.now(timezone.utc).date().isoformat()
        refs.put({"commit": commit, "kind": kind, "seen": today}, self.revision)
        refs.save()
        warnings = []
        if kind in ("branch", "pull request"):
            warnings.append(
                f"{self.where}: {self.revision} is a {kind}, and a {kind} moves: pin a commit "
                f"or tag (it names {commit[:SHORT]} now)"
            )
        return commit, warnings

    def _named(self) -> tuple[str, Any]:
        """What the declared revision is (a tag, a branch or a pull request) and the commit the
        Hub says it names: one refs call. A pull request is named by its ref, `refs/pr/N`, as
        the Hub takes it (a branch or tag cannot be named refs/...)."""
        pr = re.fullmatch(r"refs/pr/[0-9]+", self.revision) is not None
        api = _hub().HfApi(endpoint=self.endpoint, token=self.token)
        try:
            with self._bounded(JSON_LIMIT):
                listed = api.list_repo_refs(self.repo, include_pull_requests=pr)
        except Exception as exc:
            raise self._error(exc) from None
        if pr:
            for ref in listed.pull_requests or ():
                if ref.ref == self.revision:
                    return "pull request", ref.target_commit
            raise SourceError(
                f"{self.where}: the repo has no pull request {self.revision} (pull requests: "
                f"{_some(r.ref for r in listed.pull_requests or ())})"
            )
        for ref in listed.tags:
            if ref.name == self.revision:
                return "tag", ref.target_commit
        for ref in listed.branches:
            if ref.name == self.revision:
                return "branch", ref.target_commit
        raise SourceError(
            f"{self.where}: the repo has no tag or branch {self.revision} (tags: "
            f"{_some(r.name for r in listed.tags)}; branches: "
            f"{_some(r.name for r in listed.branches)})"
        )

    def _listing(self, commit: str) -> dict[str, dict[str, Any]]:
        if self.offline:
            raise SourceError(
                f"{self.where}: HF_HUB_OFFLINE is set and the files of commit {commit[:SHORT]} "
                "were never listed here: plan once online"
            )
        api = _hub().HfApi(endpoint=self.endpoint, token=self.token)
        try:
            with self._bounded(JSON_LIMIT):
                info = api.model_info(self.repo, revision=commit, files_metadata=True)
        except Exception as exc:
            raise self._error(exc) from None
        if info.sha != commit:
            raise SourceError(
                f"{self.where}: the Hub answered for commit {info.sha!r:.60}, not {commit}"
            )
        files: dict[str, dict[str, Any]] = {}
        for s in info.siblings or ():
            name = checked.file_name(s.rfilename, self.where)
            if s.size is None:
                raise SourceError(f"{self.where}: the Hub gave no size for {name}")
            files[name] = _file_fact(
                f"{self.where}: {name}",
                s.size,
                s.lfs.sha256 if s.lfs is not None else None,
                s.blob_id,
            )
        return files

    @staticmethod
    def _kept(facts: Facts) -> dict[str, dict[str, Any]] | None:
        """The listing kept with the commit, each value checked as when it came from the Hub
        (a facts file edited or torn is a miss: listed again)."""
        files = facts.get("files")
        if not isinstance(files, dict) or facts.get("version") != FACTS_VERSION:
            return None
        try:
            for name, f in files.items():
                checked.file_name(name, "kept")
                if not isinstance(f, dict):
                    return None
                _file_fact("kept", f.get("size"), f.get("sha256"), f.get("blob"))
        except SourceError:
            return None
        return files

    @staticmethod
    def _kept_sha256(facts: Facts, path: str) -> str | None:
        known = facts.get("sha256", path)
        return known if isinstance(known, str) and checked.SHA256.fullmatch(known) else None

    def _listed(self, name: str) -> tuple[str, str] | None:
        """What the listing holds a file's bytes to: its LFS sha256, or else its git blob id
        (an LFS file's blob id is its pointer's)."""
        files = self._need_facts().get("files")
        f = files.get(self._path(name)) if isinstance(files, dict) else None
        if not isinstance(f, dict):
            return None
        if f.get("sha256"):
            return "sha256", str(f["sha256"])
        return ("git blob", str(f["blob"])) if f.get("blob") else None

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
        size = self.resolve_cached().files[name].size
        try:
            with (
                self._bounded(size, name),
                http_stream_backoff("GET", url, headers=headers, max_retries=2) as response,
            ):
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

    def _bounded(self, limit: int, name: str | None = None) -> AbstractContextManager[None]:
        """What huggingface_hub reads next is held to `limit` bytes (sources.bounded)."""
        where = urlsplit(self.endpoint)
        http_host = where.hostname if where.scheme == "http" else None
        what = self._label(name) if name and self.commit else self.where
        return bounded(limit, http_host, what)

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
                f"{what}: no such repo at {shown(self.endpoint)} (or it is private or gated and "
                "HF_TOKEN, or the cached login, gives no access to it)"
            )
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if kind == "GatedRepoError" and status == 401:
            # the Hub's 401: no token came with the request (`--sandbox` sends none: HF_TOKEN="")
            how = (
                "(HF_TOKEN is empty)"
                if self.token is False
                else "(set HF_TOKEN, or log in with `hf auth login`)"
            )
            return SourceError(
                f"{what}: the repo is gated and no token was sent: its files are given only to "
                f"a token with access {how}"
            )
        if kind == "GatedRepoError":
            return SourceError(
                f"{what}: the repo is gated and the token sent (HF_TOKEN, or the saved login) "
                f"has no access to its files: ask for access on its page at {shown(self.endpoint)}"
            )
        if kind == "RevisionNotFoundError":
            return SourceError(f"{what}: the repo has no revision {self.revision}")
        if kind in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
            return SourceError(f"{what}: no such file in the repo at that revision")
        if kind in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
            return SourceError(
                f"{what}: HF_HUB_OFFLINE is set and the file is not in the Hugging Face cache: "
                "run once online, or unset HF_HUB_OFFLINE"
            )
        if status == 401:
            # not a repo's answer (those carry RepoNotFound or GatedRepo): the Hub's answer to a
            # token it does not know, "Invalid credentials in Authorization header"
            return SourceError(
                f"{what}: the Hub at {shown(self.endpoint)} refused the token as invalid (HTTP "
                "401): check HF_TOKEN, or the login saved by `hf auth login`"
            )
        if status is not None:
            return SourceError(f"{what}: the Hub at {shown(self.endpoint)} answered HTTP {status}")
        if isinstance(exc, (TypeError, KeyError, ValueError, AttributeError, IndexError)):
            # huggingface_hub read an answer of the wrong shape: the Hub was reached
            return SourceError(
                f"{what}: the Hub at {shown(self.endpoint)} gave an answer that cannot be read "
                f"({kind})"
            )
        return SourceError(f"{what}: cannot reach the Hub at {shown(self.endpoint)} ({kind})")


def _file_fact(where: str, size: Any, sha256: Any, blob: Any) -> dict[str, Any]:
    """One file of a listing as kept with its commit, each value checked (sources.checked)."""
    return {
        "size": checked.size(size, where),
        "sha256": None if sha256 is None else checked.sha256(sha256, where),
        "blob": None if blob is None else checked.blob_id(blob, where),
    }


def _some(names: Iterable[object], most: int = 10) -> str:
    """Names the Hub gave, for a message: each once, at most `most`, each cut short."""
    unique = list(dict.fromkeys(str(n)[:80] for n in names))
    more = f" and {len(unique) - most} more" if len(unique) > most else ""
    return (", ".join(unique[:most]) or "none") + more
