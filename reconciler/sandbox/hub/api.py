"""The sandbox's Hub: the part of the Hugging Face Hub API that `huggingface_hub` reads models
with, under /hf (HF_ENDPOINT=http://127.0.0.1:PORT/hf).

    GET  /api/models/{repo}[/revision/{rev}][?blobs=true]   model info: sha, siblings
    GET  /api/models/{repo}/refs                             branches and tags
    GET  /api/models/{repo}/tree/{rev}[/{path}]              the tree listing (?recursive=true)
    HEAD|GET /{repo}/resolve/{rev}/{path}                    a file, with Range

As on the Hub: a file answers with X-Repo-Commit and ETag (its git blob id, quoted); an LFS
file (weights) redirects to where its bytes are, the redirect carrying X-Linked-Etag (the
sha256) and X-Linked-Size; a Range request gets 206 with exactly that slice. Errors carry
X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and X-Error-Message,
the two headers huggingface_hub's hf_raise_for_status picks its exception by. Xet is never
advertised (no X-Xet-* header, no xet-auth link, no xetHash), so clients fetch over plain HTTP.

Revisions are read from the URL as sent: huggingface_hub quotes a revision whole
(`quote(revision, safe="")`), so `release%2Fv3` and `refs%2Fpr%2F1` are one path segment
each, the branch `release/v3` and the pull request `refs/pr/1`.

Who asks, as on the Hub: no Authorization header is an anonymous caller; `Bearer <token>` with
a token the sandbox serves (its `--token`s) is that token's user; any other Authorization is a
401 "Invalid credentials in Authorization header", on every path, public repos included (the
Hub's answer since 2025, huggingface_hub#2847). A private repo is, to whoever it does not
grant, not there: 401 RepoNotFound to an anonymous caller, 404 to a user (as for a repo that
does not exist: transformers#17651). A gated repo shows its metadata (info, refs, tree) to all
and its files (resolve) only to the tokens it grants: 401 GatedRepo to an anonymous caller,
403 GatedRepo to a user (huggingface.js#945 for the listing; dataset-viewer#2083 and
PuLID#97 for the two messages). A token is never logged, stored or echoed; a repo keeps the
ids of the tokens it grants (common/auth.token_id).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from reconciler.sandbox.common.auth import Tokens, bearer
from reconciler.sandbox.common.defaults import DEFAULT_TOKEN
from reconciler.sandbox.common.mount import CONNECTION_LOST
from reconciler.sandbox.common.responses import header_safe
from reconciler.sandbox.hub.store import COMMIT, HubCommit, HubFile, HubRepo, HubStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_log = logging.getLogger("reconciler.sandbox")

PREFIX = "/hf"
CHUNK = 256 * 1024
# The Hub's own words (huggingface_hub's hf_raise_for_status keys on the first: a 401 with it
# is "your token is wrong", not "no such repo").
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
NOT_FOUND = "Repository not found"
# ASCII digits only (\d is any script's); any length, as HTTP sets none (see _offset).
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# An offset with more digits than this is past any file the sandbox holds: it is read as this
# rather than converted (int() refuses more than 4300 digits, and a 416 or a clamp is the
# answer either way).
_OFFSET_DIGITS = 18


def is_hub_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@dataclass(frozen=True)
class Served:
    """One answer, for tests that count what a client read: body bytes actually sent."""

    method: str
    path: str
    status: int
    range: str | None
    bytes: int


class HubError(Exception):
    def __init__(
        self, status: int, code: str | None, message: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, list(headers)


class HubApi:
    """The Hub as a mounted WSGI app (hub/mount.py). Errors are `{"error": ...}` with
    X-Error-Message; an unexpected exception is a 500 in that shape, its traceback logged."""

    prefix = PREFIX
    title = "Hub"

    def __init__(
        self, store: HubStore, log: list[Served] | None = None, tokens: Tokens | None = None
    ) -> None:
        self.store = store
        self.log: list[Served] = [] if log is None else log
        self.tokens = tokens if tokens is not None else Tokens((DEFAULT_TOKEN,))

    def fault_body(self, status: int) -> dict[str, str]:
        """An injected error, in the shape of the Hub's own."""
        return {"error": HTTPStatus(status).phrase}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        try:
            return self._route(environ, start_response, method, _segments(environ), query)
        except HubError as exc:
            headers = [*exc.headers]
            if exc.code:
                headers.append(("X-Error-Code", exc.code))
            # The message may quote the URL (a revision): escaped, never a CR or LF in a header.
            headers.append(("X-Error-Message", header_safe(exc.message)))
            return self._send(
                environ, start_response, method, exc.status, {"error": exc.message}, headers
            )
        except CONNECTION_LOST:
            raise
        except Exception:
            path = str(environ.get("PATH_INFO", ""))
            _log.exception("sandbox: unexpected error on %s %s", method, path)
            message = "Internal Error"
            headers = [("X-Error-Message", message)]
            return self._send(environ, start_response, method, 500, {"error": message}, headers)

    def _route(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        method: str,
        seg: list[str],
        query: dict[str, list[str]],
    ) -> Iterable[bytes]:
        """`seg`: the path's segments below /hf, each decoded on its own (_segments)."""
        caller = self._caller(environ)
        if len(seg) >= 5 and seg[2] == "resolve" and all(seg[:2]) and "/".join(seg[4:]):
            self._only(method, "GET", "HEAD")
            repo = self._repo(f"{seg[0]}/{seg[1]}", caller, files=True)
            commit = self._commit(repo, seg[3])
            name = "/".join(seg[4:])
            return self._file(environ, start_response, method, repo, commit, name, True)
        if len(seg) >= 5 and seg[0] == "lfs" and COMMIT.fullmatch(seg[3]) and "/".join(seg[4:]):
            self._only(method, "GET", "HEAD")
            repo = self._repo(f"{seg[1]}/{seg[2]}", caller, files=True)
            commit = self._commit(repo, seg[3])
            name = "/".join(seg[4:])
            return self._file(environ, start_response, method, repo, commit, name, False)
        if len(seg) < 4 or seg[:2] != ["api", "models"] or not all(seg[2:4]):
            raise HubError(404, None, "Sorry, we can't find the page you are looking for.")
        self._only(method, "GET")
        repo_id, rest = f"{seg[2]}/{seg[3]}", seg[4:]
        if rest == ["refs"]:
            repo = self._repo(repo_id, caller)
            return self._send(environ, start_response, method, 200, _refs(repo, query))
        if len(rest) >= 2 and rest[0] == "tree":
            # the path is quoted whole too (HfApi.list_repo_tree), so it may be one segment
            repo = self._repo(repo_id, caller)
            commit = self._commit(repo, rest[1])
            folder = "/".join(rest[2:])
            listing = _tree(commit, folder.strip("/"), _true(query, "recursive"))
            if listing is None:
                raise HubError(404, "EntryNotFound", f"{folder} does not exist on {rest[1]}")
            return self._send(environ, start_response, method, 200, listing)
        if not rest or (rest[0] == "revision" and "/".join(rest[1:])):
            repo = self._repo(repo_id, caller)
            # Sandbox choice: after /revision/ the rest of the path is the revision, quoted or
            # not (nothing follows it, so `release/v3` cannot be misread there)
            commit = self._commit(repo, "/".join(rest[1:]) or "main")
            body = _info(repo, commit, _true(query, "blobs"))
            return self._send(environ, start_response, method, 200, body)
        raise HubError(404, None, "Sorry, we can't find the page you are looking for.")

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HubError(405, None, f"Method {method} not allowed")

    def _caller(self, environ: WSGIEnvironment) -> str | None:
        """The id of the token the request carries, or None for an anonymous one; a 401 if it
        carries any Authorization that is not a token the sandbox serves."""
        header = environ.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        token = bearer(str(header))
        caller = self.tokens.known(token) if token is not None else None
        if caller is None:
            raise HubError(401, None, INVALID_CREDENTIALS)
        return caller

    def _repo(self, repo_id: str, caller: str | None, *, files: bool = False) -> HubRepo:
        """The repo, if `caller` may see it (and, with `files`, read its files)."""
        repo = self.store.repo(repo_id)
        granted = repo is not None and caller is not None and caller in repo.access.granted
        if repo is None or (repo.access.private and not granted):
            # the same answer for a repo that is not there and one the caller may not see
            raise HubError(401 if caller is None else 404, "RepoNotFound", NOT_FOUND)
        if files and repo.access.gated and not granted:
            if caller is None:
                raise HubError(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.id} is restricted. You must have access to it and "
                    "be authenticated to access it. Please log in.",
                )
            # Sandbox choice: the Hub's sentence, then how the sandbox grants access instead
            # of the Hub's "Visit <its page> to ask for access"
            raise HubError(
                403,
                "GatedRepo",
                f"Access to model {repo.id} is restricted and you are not in the authorized "
                f"list. In the sandbox: reconciler sandbox hf-push {repo.id} FOLDER --grant "
                "TOKEN",
            )
        return repo

    @staticmethod
    def _commit(repo: HubRepo, revision: str) -> HubCommit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _file(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        method: str,
        repo: HubRepo,
        commit: HubCommit,
        name: str,
        resolving: bool,
    ) -> Iterable[bytes]:
        entry = commit.files.get(name)
        if entry is None:
            raise HubError(
                404,
                "EntryNotFound",
                "Entry not found",
                [("X-Repo-Commit", commit.sha)],
            )
        headers = [("X-Repo-Commit", commit.sha), ("Accept-Ranges", "bytes")]
        if entry.lfs:
            headers += [
                ("X-Linked-Etag", f'"{entry.sha256}"'),
                ("X-Linked-Size", str(entry.size)),
            ]
        if entry.lfs and resolving:
            # The Hub sends an LFS file's bytes from elsewhere (a CDN); here, from /lfs/. The
            # redirect names the commit, not the revision, so the bytes are those of the HEAD.
            where = f"{PREFIX}/lfs/{repo.id}/{commit.sha}/{quote(name)}"
            headers += [("ETag", f'"{entry.oid}"'), ("Location", where)]
            return self._raw(environ, start_response, method, 302, headers, b"", None)
        headers.append(("ETag", f'"{entry.sha256 if entry.lfs else entry.oid}"'))
        return self._blob(environ, start_response, method, entry, headers)

    def _blob(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        method: str,
        entry: HubFile,
        headers: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        asked = environ.get("HTTP_RANGE")
        start, end = 0, entry.size  # end exclusive
        status = 200
        if asked is not None:
            m = _RANGE.fullmatch(str(asked).strip())
            if m and (m[1] or m[2]):
                if m[1]:
                    start = _offset(m[1])
                    end = min(_offset(m[2]) + 1, entry.size) if m[2] else entry.size
                else:
                    start = max(entry.size - _offset(m[2]), 0)
                if start >= entry.size or start >= end:
                    raise HubError(
                        416,
                        None,
                        "Requested Range Not Satisfiable",
                        [("Content-Range", f"bytes */{entry.size}")],
                    )
                status = 206
                headers.append(("Content-Range", f"bytes {start}-{end - 1}/{entry.size}"))
        headers += [
            ("Content-Type", "application/octet-stream"),
            ("Content-Disposition", _disposition(Path(entry.path).name)),
        ]
        return self._raw(
            environ, start_response, method, status, headers, None, (entry, start, end)
        )

    def _send(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        method: str,
        status: int,
        body: Any,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Iterable[bytes]:
        payload = json.dumps(body).encode()
        return self._raw(
            environ,
            start_response,
            method,
            status,
            [("Content-Type", "application/json; charset=utf-8"), *headers],
            payload,
            None,
        )

    def _raw(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        method: str,
        status: int,
        headers: list[tuple[str, str]],
        payload: bytes | None,
        blob: tuple[HubFile, int, int] | None,
    ) -> Iterable[bytes]:
        length = len(payload) if payload is not None else (blob[2] - blob[1] if blob else 0)
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [*headers, ("Content-Length", str(length))],
        )
        record = Served(
            method,
            str(environ.get("PATH_INFO", "")),
            status,
            environ.get("HTTP_RANGE"),
            0,
        )
        if method == "HEAD":
            self.log.append(record)
            return []
        if payload is not None:
            self.log.append(_sent(record, len(payload)))
            return [payload]
        assert blob is not None
        return self._stream(record, *blob)

    def _stream(self, record: Served, entry: HubFile, start: int, end: int) -> Iterator[bytes]:
        sent = 0
        try:
            with self.store.blob(entry.sha256).open("rb") as f:
                f.seek(start)
                while sent < end - start:
                    chunk = f.read(min(CHUNK, end - start - sent))
                    if not chunk:
                        break
                    sent += len(chunk)
                    yield chunk
        finally:
            self.log.append(_sent(record, sent))


def _segments(environ: WSGIEnvironment) -> list[str]:
    """The request path's segments below /hf, each percent-decoded on its own, as the Hub reads
    a URL: `resolve/release%2Fv3/a.json` names the revision `release/v3`. PATH_INFO has every
    %2F decoded already, so they come from the request target as sent (REQUEST_URI, which
    werkzeug sets), held to PATH_INFO: if the two disagree, or there is no REQUEST_URI (a
    caller in-process), PATH_INFO's segments are taken."""
    decoded = _wsgi_text(str(environ.get("PATH_INFO", "")))
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        target = _wsgi_text(str(raw)).split("?", 1)[0].split("#", 1)[0]
        if not target.startswith("/"):  # the absolute form, http://host/path
            target = urlsplit(target).path
        parts = [unquote(part) for part in target.split("/")]
        if "/".join(parts) == decoded and parts[1:2] == [PREFIX[1:]]:
            return parts[2:]
    return decoded.split("/")[2:]  # past "" and "hf"


def _wsgi_text(value: str) -> str:
    """The decoded path as text: WSGI hands it over as latin-1 code points of its UTF-8 bytes
    (a repo file named `é.json` is asked for as `%C3%A9.json`)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _offset(digits: str) -> int:
    """A Range offset: its value, or 10**18 (past any file) if it has more digits than that."""
    return int(digits) if len(digits) <= _OFFSET_DIGITS else 10**_OFFSET_DIGITS


def _disposition(name: str) -> str:
    """Content-Disposition for a file: the plain name when it can be quoted as is; otherwise
    a visible-ASCII stand-in beside the exact name in RFC 6266's filename* (as the Hub sends)."""
    plain = re.sub(r'[^\x20-\x7e]|["\\]', "_", name)
    if plain == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def _sent(record: Served, count: int) -> Served:
    return Served(record.method, record.path, record.status, record.range, count)


def _true(query: dict[str, list[str]], key: str) -> bool:
    return any(v.lower() in ("1", "true") for v in query.get(key, []))


def _refs(repo: HubRepo, query: dict[str, list[str]]) -> dict[str, Any]:
    def ref(kind: str, name: str, sha: str) -> dict[str, str]:
        return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

    body: dict[str, Any] = {
        "branches": [ref("heads", n, s) for n, s in sorted(repo.branches.items())],
        "converts": [],
        "tags": [ref("tags", n, s) for n, s in sorted(repo.tags.items())],
    }
    if _true(query, "include_prs"):
        # as the Hub lists them: name "N", ref "refs/pr/N" (as mirrors record its answers;
        # huggingface_hub reads the three fields and nothing else)
        body["pullRequests"] = [ref("pr", str(n), s) for n, s in sorted(repo.prs.items())]
    return body


def _sibling(f: HubFile, blobs: bool) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": f.path}
    found: dict[str, Any] = {"rfilename": f.path, "size": f.size, "blobId": f.oid}
    if f.lfs:
        found["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
    return found


def _info(repo: HubRepo, commit: HubCommit, blobs: bool) -> dict[str, Any]:
    owner = repo.id.split("/")[0]
    return {
        "_id": repo.id,
        "id": repo.id,
        "modelId": repo.id,
        "author": owner,
        "sha": commit.sha,
        "lastModified": commit.date,
        "createdAt": repo.created_at,
        "private": repo.access.private,
        "disabled": False,
        # Sandbox choice: a gated repo is "manual" (the Hub's other value, "auto", grants
        # access on request; the sandbox has no request, only hf-push --grant)
        "gated": "manual" if repo.access.gated else False,
        "downloads": 0,
        "likes": 0,
        "tags": ["peft", "safetensors"],
        "library_name": "peft",
        "siblings": [_sibling(f, blobs) for f in commit.files.values()],
    }


def _tree(commit: HubCommit, folder: str, recursive: bool) -> list[dict[str, Any]] | None:
    prefix = f"{folder}/" if folder else ""
    entries: dict[str, dict[str, Any]] = {}
    for f in commit.files.values():
        if not f.path.startswith(prefix):
            continue
        rest = f.path[len(prefix) :]
        parts = rest.split("/")
        for depth in range(1, len(parts)):  # the folders on the way
            if not recursive and depth > 1:
                break
            name = prefix + "/".join(parts[:depth])
            entries.setdefault(
                name, {"type": "directory", "oid": "0" * 40, "size": 0, "path": name}
            )
        if recursive or len(parts) == 1:
            item: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
            if f.lfs:
                item["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            entries[f.path] = item
    if folder and not entries:
        return None
    return [entries[k] for k in sorted(entries)]
