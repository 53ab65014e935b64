"""The sandbox Hub's state: model repos as commits of files, the files' bytes stored once each.

Under <data dir>/hub/: `blobs/<sha256>` holds each distinct content once;
`repos/<owner>/<name>.json` holds a repo's commits (each the whole tree: path -> size, sha256,
git blob id, whether it is an LFS file), its branches, its tags, its pull requests (`refs/pr/N`)
and who may read it (private, gated, and the ids of the tokens granted access: never a token).
A push writes the blobs first, then the repo file by atomic rename under a lock, so a server
reading the same folder sees a commit whole or not at all. Commits are immutable; a tag, a
branch or a pull request is a name that points at one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reconciler.sandbox.common.files import read_regular
from reconciler.sandbox.common.names import control_character

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
COMMIT = re.compile(r"[0-9a-f]{40}")
# A pull request's ref, as the Hub names it (huggingface_hub: SPECIAL_REFS_REVISION_REGEX).
PR_REF = re.compile(r"refs/pr/([1-9][0-9]{0,8})")
# Sandbox choice: a repo file holds every commit's tree; far more than any test pushes.
MAX_REPO_FILE_BYTES = 64 << 20
# What the Hub's default .gitattributes sends to LFS (weights and archives); anything larger than
# 10 MB goes there too.
LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf",
    ".npy", ".npz", ".pkl", ".zip", ".gz", ".tar", ".zst", ".parquet", ".arrow",
)  # fmt: skip
LFS_THRESHOLD = 10 * 1024 * 1024
CHUNK = 1 << 20


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    sha256: str  # hex
    oid: str  # git blob id (sha1 of the file, or of its LFS pointer)
    lfs: bool

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))


@dataclass(frozen=True)
class HubCommit:
    sha: str
    date: str
    files: Mapping[str, HubFile]


@dataclass(frozen=True)
class Access:
    """Who may read a repo. Private: only the granted tokens (to anyone else the repo does not
    exist); gated: anyone sees its metadata, only the granted tokens its files. `granted` holds
    token ids (common/auth.token_id), never the tokens."""

    private: bool = False
    gated: bool = False
    granted: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AccessChange:
    """What a push changes about a repo's Access: None keeps what it was; `grant` adds token
    ids to those granted."""

    private: bool | None = None
    gated: bool | None = None
    grant: tuple[str, ...] = ()

    def applied(self, access: Access) -> Access:
        return Access(
            access.private if self.private is None else self.private,
            access.gated if self.gated is None else self.gated,
            access.granted | frozenset(self.grant),
        )


@dataclass(frozen=True)
class HubRepo:
    id: str
    created_at: str
    commits: Mapping[str, HubCommit]
    branches: Mapping[str, str]
    tags: Mapping[str, str]
    prs: Mapping[int, str] = field(default_factory=dict)  # N of refs/pr/N -> its head commit
    access: Access = Access()

    def resolve(self, revision: str) -> HubCommit | None:
        """A branch, a tag, a pull request (`refs/pr/N`) or a commit sha (full, as the Hub
        takes it) -> its commit."""
        sha = self.branches.get(revision) or self.tags.get(revision)
        pr = PR_REF.fullmatch(revision)
        if sha is None and pr:
            sha = self.prs.get(int(pr[1]))
        if sha is None and COMMIT.fullmatch(revision):
            sha = revision
        return self.commits.get(sha) if sha else None


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    ).encode()


class HubStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "hub"

    def blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def _repo_file(self, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_id}.json"

    def repo(self, repo_id: str) -> HubRepo | None:
        if not REPO_ID.fullmatch(repo_id):
            return None
        try:
            # A regular file only: a FIFO in its place would hold the request (and a push)
            # for ever. Not one, unreadable or no JSON: as if the repo were not there.
            data = json.loads(read_regular(self._repo_file(repo_id), MAX_REPO_FILE_BYTES))
        except (OSError, ValueError):
            return None
        return _repo_from_json(data)

    def push(
        self,
        repo_id: str,
        folder: Path,
        tag: str | None = None,
        branch: str = "main",
        now: datetime | None = None,
        *,
        access: AccessChange | None = None,
    ) -> str:
        """Add a commit to `branch` holding its tree with every file of `folder` added (or
        replaced), as `huggingface_hub.upload_folder` does; move `tag` to it; change who may
        read the repo by `access`. `branch` may name an open pull request (`refs/pr/N`): the
        commit goes on top of it, as `upload_folder(revision="refs/pr/N")` does. Returns the
        commit's sha."""
        return self._push(repo_id, folder, tag, branch, now, access, new_pr=False)[1]

    def open_pr(
        self,
        repo_id: str,
        folder: Path,
        base: str = "main",
        now: datetime | None = None,
        *,
        tag: str | None = None,
        access: AccessChange | None = None,
    ) -> tuple[str, str]:
        """Open a pull request on the branch `base`, as `upload_folder(create_pr=True)` does: a
        commit holding base's tree with `folder`'s files, at a new `refs/pr/N` (N one more than
        the repo's last). Returns the ref and the commit's sha."""
        return self._push(repo_id, folder, tag, base, now, access, new_pr=True)

    def _push(
        self,
        repo_id: str,
        folder: Path,
        tag: str | None,
        branch: str,
        now: datetime | None,
        change: AccessChange | None,
        *,
        new_pr: bool,
    ) -> tuple[str, str]:
        if not REPO_ID.fullmatch(repo_id):
            raise ValueError(f"{repo_id!r} is not a repo id (owner/name)")
        pr = None if new_pr else PR_REF.fullmatch(branch)
        for name in (tag, None if pr else branch):
            if name is not None and not _ref_name_ok(name):
                raise ValueError(f"{name!r} is not a usable tag or branch name")
        added = {f.path: f for f in self._store_files(Path(folder))}
        if not added:
            raise ValueError(f"{folder} holds no file to push")
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._locked():
            repo = self.repo(repo_id)
            branches = dict(repo.branches) if repo else {}
            prs = dict(repo.prs) if repo else {}
            if pr and int(pr[1]) not in prs:
                # the Hub: a push to a PR that is not there is refused (no branch refs/pr/N)
                raise ValueError(f"{repo_id} has no pull request {branch}")
            if new_pr and branch not in branches:
                raise ValueError(f"{repo_id} has no branch {branch} to open a pull request on")
            head = prs.get(int(pr[1])) if pr else branches.get(branch)
            parent = repo.commits.get(head or "") if repo else None
            files = {**(parent.files if parent else {}), **added}
            body = json.dumps(
                {
                    "parent": parent.sha if parent else None,
                    "date": stamp,
                    "files": {p: f.oid for p, f in sorted(files.items())},
                },
                sort_keys=True,
            )
            sha = hashlib.sha1(body.encode()).hexdigest()
            ref = branch
            if new_pr:
                number = max(prs, default=0) + 1
                prs[number], ref = sha, f"refs/pr/{number}"
            elif pr:
                prs[int(pr[1])] = sha
            else:
                branches[branch] = sha
            commit = HubCommit(sha, stamp, dict(sorted(files.items())))
            repo = HubRepo(
                id=repo_id,
                created_at=repo.created_at if repo else stamp,
                commits={**(repo.commits if repo else {}), sha: commit},
                branches=branches,
                tags={**(repo.tags if repo else {}), **({tag: sha} if tag else {})},
                prs=prs,
                access=(change or AccessChange()).applied(repo.access if repo else Access()),
            )
            _write_atomic(self._repo_file(repo_id), json.dumps(_repo_to_json(repo), indent=1))
        return ref, sha

    def _store_files(self, folder: Path) -> Iterator[HubFile]:
        for path, relative in _files(folder):
            yield self._store_file(path, relative)

    def _store_file(self, path: Path, relative: str) -> HubFile:
        self.root.joinpath("blobs").mkdir(parents=True, exist_ok=True)
        sha256, sha1 = hashlib.sha256(), hashlib.sha1()
        size = path.stat().st_size
        sha1.update(f"blob {size}\0".encode())
        fd, tmp = tempfile.mkstemp(prefix=".incoming.", dir=self.root / "blobs")
        try:
            with path.open("rb") as src, os.fdopen(fd, "wb") as dst:
                read = 0
                while chunk := src.read(CHUNK):
                    sha256.update(chunk)
                    sha1.update(chunk)
                    dst.write(chunk)
                    read += len(chunk)
            if read != size:
                raise ValueError(f"{path} changed while it was pushed")
            target = self.blob(sha256.hexdigest())
            if target.exists():
                os.unlink(tmp)
            else:
                os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        lfs = relative.lower().endswith(LFS_SUFFIXES) or size > LFS_THRESHOLD
        hex256 = sha256.hexdigest()
        if lfs:
            pointer = lfs_pointer(hex256, size)
            oid = hashlib.sha1(f"blob {len(pointer)}\0".encode() + pointer).hexdigest()
        else:
            oid = sha1.hexdigest()
        return HubFile(relative, size, hex256, oid, lfs)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _files(folder: Path) -> list[tuple[Path, str]]:
    """The regular files of `folder` to push, with their repo paths; ValueError, before any is
    stored, if one has a control character in its name (common/names.py: the sandbox's Hub
    keeps no such name, as it would reach listings and headers)."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink() or not path.is_file() or relative.split("/")[0] == ".git":
            continue
        if control_character(relative) is not None:
            raise ValueError(f"{relative!r} in {folder} has a control character in its name")
        found.append((path, relative))
    return found


def _ref_name_ok(name: str) -> bool:
    # git's rules, as far as a sandbox needs them; no 40-hex name, which would read as a commit;
    # nothing under refs/ (the Hub: "Invalid reference for a branch: refs/pr/1")
    return (
        re.fullmatch(r"[A-Za-z0-9._-][A-Za-z0-9._/-]{0,99}", name) is not None
        and ".." not in name
        and "//" not in name
        and not name.endswith(("/", ".lock"))
        and not name.startswith("refs/")
        and not COMMIT.fullmatch(name)
    )


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _repo_to_json(repo: HubRepo) -> dict[str, Any]:
    return {
        "id": repo.id,
        "created_at": repo.created_at,
        "branches": dict(repo.branches),
        "tags": dict(repo.tags),
        "prs": {str(n): sha for n, sha in sorted(repo.prs.items())},
        "access": {
            "private": repo.access.private,
            "gated": repo.access.gated,
            "granted": sorted(repo.access.granted),
        },
        "commits": {
            c.sha: {
                "date": c.date,
                "files": {
                    f.path: {"size": f.size, "sha256": f.sha256, "oid": f.oid, "lfs": f.lfs}
                    for f in c.files.values()
                },
            }
            for c in repo.commits.values()
        },
    }


def _repo_from_json(data: dict[str, Any]) -> HubRepo:
    access = data.get("access", {})  # absent from a repo pushed before access existed: public
    return HubRepo(
        id=data["id"],
        created_at=data["created_at"],
        branches=data["branches"],
        tags=data["tags"],
        prs={int(n): sha for n, sha in data.get("prs", {}).items()},
        access=Access(
            bool(access.get("private", False)),
            bool(access.get("gated", False)),
            frozenset(access.get("granted", ())),
        ),
        commits={
            sha: HubCommit(
                sha,
                c["date"],
                {
                    p: HubFile(p, f["size"], f["sha256"], f["oid"], f["lfs"])
                    for p, f in c["files"].items()
                },
            )
            for sha, c in data["commits"].items()
        },
    )
