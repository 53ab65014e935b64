"""Files at HTTPS URLs, each declared with the sha256 it must have: a release asset, an
object in a bucket behind HTTPS.

Plan downloads no weights: the digest is the declared one, the size comes from a HEAD (a
one-byte Range read where HEAD is refused), the header checks from Range reads, and
adapter_config.json (a few kB) is read whole and held to its declared sha256. What was learnt
is kept under the project's sources/url/<sha256>.json: content of a given sha256 never changes,
so a warm plan sends nothing. Apply downloads each file to the project's downloads/, hashing as
it goes, and refuses it (before anything is created) unless it has the declared sha256.
Plain http:// is refused by the config except to a loopback address (tests, the sandbox), and
here in a redirect the same way: never from https, never to another host that is not loopback.

Every answer is bounded (M4 of issue 20): a download stops at the planned size and fails naming
it; nothing is decoded (identity is asked for, and a compressed answer refused, so no gzip bomb
is inflated in memory); each read has a deadline of DEADLINE + its size / MIN_RATE seconds, so
a trickle of a byte a second cannot hold apply for ever; the temp file goes on failure, and
one left by a kill is swept before the next download of that file.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from reconciler.base.labels import shown
from reconciler.base.model import AssetSource
from reconciler.base.untrusted import visible
from reconciler.sources import checked
from reconciler.sources.base import (
    Context,
    Fetched,
    HeadReader,
    Resolved,
    SourceError,
    SourceFile,
    hashed,
)
from reconciler.sources.facts import Facts
from reconciler.state.atomic import atomic_file

if TYPE_CHECKING:
    import httpx

CHUNK = 256 * 1024
TIMEOUT = {"connect": 10.0, "read": 60.0, "write": 60.0, "pool": 10.0}
DEADLINE = 60.0  # seconds any read is given, whatever its size
MIN_RATE = 256 * 1024  # bytes a second: slower than this, a read is given up
MAX_REDIRECTS = 10
_FETCHING: dict[str, threading.Lock] = {}  # sha256 -> held while that file is downloaded
_FETCHING_LOCK = threading.Lock()


class _Unreadable(SourceError):
    """No answer could be read (a connection refused or broken, a timeout)."""


def _sweep(target: Path) -> None:
    """Remove the temp files a killed download of `target` left beside it (state.atomic
    names them .NAME.<8 hex>.tmp). Called with the file's fetch lock held; across processes,
    apply's lock keeps a second download of the same file from running at the same time."""
    for left in target.parent.glob(f".{target.name}.*.tmp"):
        if left.is_file() and not left.is_symlink():
            left.unlink(missing_ok=True)


class UrlSource(Fetched):
    def __init__(self, files: Mapping[str, AssetSource], ctx: Context) -> None:
        self.files = dict(files)
        self.ctx = ctx
        self._client: httpx.Client | None = None
        self._heads: dict[str, bytes] = {}
        self._facts: dict[str, Facts] = {}

    def _hex(self, name: str) -> str:
        sha = self.files[name].sha256 or ""
        return sha.removeprefix("sha256:")

    def _fact(self, name: str) -> Facts:
        hex_ = self._hex(name)
        if hex_ not in self._facts:
            project = self.ctx.project
            self._facts[hex_] = Facts(project.sources / "url" / f"{hex_}.json", project.root)
        return self._facts[hex_]

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                follow_redirects=False,  # followed by _opened, each hop checked
                timeout=httpx.Timeout(**TIMEOUT),
                headers={"User-Agent": "reconciler", "Accept-Encoding": "identity"},
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # the Source protocol

    def resolve(self) -> Resolved:
        found = {}
        for name, spec in sorted(self.files.items()):
            size = self.entry(name)[0]
            found[name] = SourceFile(name, size, spec.sha256, shown(spec.location))
        # the folder the URLs share (https://host/releases/v1/), or the one URL
        urls = [shown(s.location) for s in self.files.values()]
        folders = {u.rsplit("/", 1)[0] + "/" for u in urls}
        label = folders.pop() if len(folders) == 1 and len(urls) > 1 else ", ".join(sorted(urls))
        return Resolved(label=label, files=found)

    def digest(self, name: str) -> str:
        return self.files[name].sha256 or ""

    def fetch(self, name: str) -> Path:
        """The file, downloaded to the project's downloads/<sha256> while hashed, and kept only
        if it has the declared sha256; SourceError (and nothing kept) otherwise."""
        hex_ = self._hex(name)
        with _FETCHING_LOCK:
            lock = _FETCHING.setdefault(hex_, threading.Lock())
        with lock:
            target = self.ctx.project.downloads / hex_
            if target.is_file() and hashed(target)[1] == hex_:
                return target
            _sweep(target)
            self._download(name, target)
        return target

    def _download(self, name: str, target: Path) -> None:
        spec = self.files[name]
        hex_ = self._hex(name)
        planned = self.entry(name)[0]
        h = hashlib.sha256()
        size = 0
        # not durable: a file torn by a power cut fails the sha256 above and is fetched again
        with (
            atomic_file(target, project_root=self.ctx.project.root, durable=False) as out,
            self._get(name, {}) as response,
        ):
            for chunk in self._bounded(name, response, planned):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
            if h.hexdigest() != hex_:
                raise SourceError(
                    f"{shown(spec.location)}: its content has sha256 {h.hexdigest()[:12]}… "
                    f"({size:,} bytes), not the declared {hex_[:12]}…: it was not uploaded and "
                    "nothing was created; fix the sha256 in the config, or the file"
                )

    # what preflight.check_adapter reads (preflight.AdapterFiles)

    def names(self) -> Collection[str]:
        return list(self.files)

    def entry(self, name: str) -> tuple[int, str | None]:
        """The file's size: kept with its sha256 (checked as the server's was: a facts file
        edited or torn is a miss), or asked of the server once."""
        facts = self._fact(name)
        try:
            return checked.size(facts.get("size"), "kept"), None
        except SourceError:
            size = self._size(name)
        facts.put(size, "size")
        facts.save()
        return size, None

    def config(self, name: str) -> dict[str, Any]:
        from reconciler.adapters.preflight import CONFIG_FACT, parse_config

        facts = self._fact(name)
        known = facts.get(CONFIG_FACT)
        if isinstance(known, dict):
            return known
        size = self.entry(name)[0]
        raw = self.header(name, size)
        sha = hashlib.sha256(raw).hexdigest()
        if sha != self._hex(name):
            return {
                "error": f"the content at {shown(self.files[name].location)} has sha256 "
                f"{sha}, not the declared {self._hex(name)}: fix the sha256 "
                "in the config, or the file"
            }
        found = parse_config(raw)
        facts.put(found, CONFIG_FACT)
        facts.save()
        return found

    def weights(self, name: str) -> dict[str, Any]:
        from reconciler.adapters.preflight import WEIGHTS_FACT, weights_summary

        facts = self._fact(name)
        known = facts.get(WEIGHTS_FACT)
        if isinstance(known, dict) and isinstance(known.get("problems"), list):
            return known
        found = weights_summary(cast(BinaryIO, HeadReader(self, name)), self.entry(name)[0])
        facts.put(found, WEIGHTS_FACT)
        facts.save()
        return found

    # HTTP

    @contextmanager
    def _get(self, name: str, headers: Mapping[str, str]) -> Iterator[httpx.Response]:
        with self._opened("GET", name, headers) as response:
            self._check(name, response)
            yield response

    @contextmanager
    def _opened(
        self, method: str, name: str, headers: Mapping[str, str]
    ) -> Iterator[httpx.Response]:
        """The answer to `method` on the file's URL, redirects followed one by one, each
        hop held to the rule the config holds the URL to (_hop)."""
        import httpx

        url = self.files[name].location
        client = self._http()
        try:
            for _ in range(MAX_REDIRECTS + 1):
                request = client.build_request(method, url, headers=dict(headers))
                response = client.send(request, stream=True)
                if not response.is_redirect:
                    break
                response.close()
                url = self._hop(name, url, response)
            else:
                raise SourceError(
                    f"{shown(self.files[name].location)}: more than {MAX_REDIRECTS} redirects"
                )
            try:
                yield response
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise _Unreadable(f"{shown(url)}: cannot be read ({type(exc).__name__})") from None

    def _hop(self, name: str, url: str, response: httpx.Response) -> str:
        """Where a redirect goes, if it may be followed: https anywhere; plain http only
        from plain http, to a loopback address (what the config allows a URL)."""
        import httpx

        try:
            nxt = httpx.URL(url).join(response.headers.get("Location", ""))
        except (httpx.InvalidURL, ValueError):
            nxt = None
        declared = shown(self.files[name].location)
        if nxt is None or not nxt.host:
            raise SourceError(f"{declared}: the server answered with a redirect to no URL")
        if nxt.scheme == "https":
            return str(nxt)
        where = f"{nxt.scheme}://{nxt.host}"
        if nxt.scheme != "http":
            raise SourceError(f"{declared}: a redirect to {where} is refused: https:// only")
        if httpx.URL(url).scheme != "http" or not checked.is_loopback(nxt.host):
            raise SourceError(
                f"{declared}: a redirect to plain {where} is refused (the bytes could be "
                "changed on the way): https:// only, plain http:// only on loopback"
            )
        return str(nxt)

    def _bounded(self, name: str, response: httpx.Response, planned: int) -> Iterator[bytes]:
        """The answer's bytes as sent (never decoded), no more than `planned` of them, within
        the deadline that size is given."""
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        where = shown(self.files[name].location)
        if encoding not in ("", "identity"):
            raise SourceError(
                f"{where}: the server sent it compressed (Content-Encoding: "
                f"{visible(encoding[:20])}) though asked for the bytes as they are; it is not "
                "decoded"
            )
        deadline = time.monotonic() + DEADLINE + planned / MIN_RATE
        got = 0
        for chunk in response.iter_raw():  # as each read brings it, to watch the clock
            got += len(chunk)
            if got > planned:
                raise SourceError(
                    f"{where}: the server sent more than the planned {planned:,} bytes: it "
                    "was not used and nothing was created for it; plan again"
                )
            if time.monotonic() > deadline:
                raise SourceError(
                    f"{where}: the server sends too slowly ({got:,} of {planned:,} bytes in "
                    f"{DEADLINE + planned / MIN_RATE:.0f} s): given up"
                )
            yield chunk

    def _check(self, name: str, response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise SourceError(
                f"{shown(self.files[name].location)}: the server answered HTTP "
                f"{response.status_code}"
            )

    def _size(self, name: str) -> int:
        """The file's size from a HEAD (Content-Length), or else a one-byte Range read
        (Content-Range's total), checked to be a count of bytes (sources.checked.size)."""
        url = self.files[name].location
        where = f"{shown(url)}: {name}"
        try:
            with self._opened("HEAD", name, {}) as response:
                length = response.headers.get("Content-Length")
                encoded = response.headers.get("Content-Encoding", "identity") != "identity"
                if response.status_code < 400 and length and not encoded:
                    return checked.size_text(length.strip(), where)
        except _Unreadable:
            pass  # a HEAD refused or broken: the Range read below
        with self._get(name, {"Range": "bytes=0-0"}) as r:
            total = r.headers.get("Content-Range", "").rpartition("/")[2].strip()
            if r.status_code == 206 and total and total != "*":
                return checked.size_text(total, where)
        raise SourceError(
            f"{shown(url)}: the server says neither its size (Content-Length) nor serves a "
            "byte range (Content-Range), so it cannot be checked before apply"
        )

    def _range(self, name: str, start: int, end: int) -> bytes:
        got = bytearray()
        headers = {"Range": f"bytes={start}-{end - 1}"}
        with self._get(name, headers) as response:
            skip = start if response.status_code == 200 else 0  # Range ignored: skip ahead
            for chunk in self._bounded(name, response, self.entry(name)[0]):
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                got += chunk[: end - start - len(got)]
                if len(got) >= end - start:
                    break
        return bytes(got)
