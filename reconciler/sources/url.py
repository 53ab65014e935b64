"""Files at HTTPS URLs, each declared with the sha256 it must have: a release asset, an
object in a bucket behind HTTPS.

Plan downloads no weights: the digest is the declared one, the size comes from a HEAD (a
one-byte Range read where HEAD is refused), the header checks from Range reads, and
adapter_config.json (a few kB) is read whole and held to its declared sha256. What was learnt
is kept under the project's sources/url/<sha256>.json: content of a given sha256 never changes,
so a warm plan sends nothing. Apply downloads each file to the project's downloads/, hashing as
it goes, and refuses it (before anything is created) unless it has the declared sha256.
Plain http:// is refused by the config except to a loopback address (tests, the sandbox).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from reconciler.base.labels import shown
from reconciler.base.model import AssetSource
from reconciler.sources.base import Context, Fetched, HeadReader, Resolved, SourceError, SourceFile
from reconciler.sources.facts import Facts
from reconciler.state.atomic import atomic_file

if TYPE_CHECKING:
    import httpx

CHUNK = 256 * 1024
TIMEOUT = {"connect": 10.0, "read": 60.0, "write": 60.0, "pool": 10.0}


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
                follow_redirects=True,
                timeout=httpx.Timeout(**TIMEOUT),
                headers={"User-Agent": "reconciler"},
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # the Source protocol

    def resolve(self) -> Resolved:
        found = {}
        for name, spec in sorted(self.files.items()):
            facts = self._fact(name)
            size = facts.get("size")
            if not isinstance(size, int):
                size = self._size(name)
                facts.put(size, "size")
                facts.save()
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
        spec = self.files[name]
        hex_ = self._hex(name)
        target = self.ctx.project.downloads / hex_
        if target.is_file() and _sha256_of(target) == hex_:
            return target
        h = hashlib.sha256()
        size = 0
        # not durable: a file torn by a power cut fails the sha256 above and is fetched again
        with (
            atomic_file(target, project_root=self.ctx.project.root, durable=False) as out,
            self._get(name, {}) as response,
        ):
            for chunk in response.iter_bytes(CHUNK):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
            if h.hexdigest() != hex_:
                raise SourceError(
                    f"{shown(spec.location)}: its content has sha256 {h.hexdigest()[:12]}… "
                    f"({size:,} bytes), not the declared {hex_[:12]}…: it was not uploaded and "
                    "nothing was created; fix the sha256 in the config, or the file"
                )
        return target

    # what preflight.check_adapter reads (preflight.AdapterFiles)

    def names(self) -> Collection[str]:
        return list(self.files)

    def entry(self, name: str) -> tuple[int, str | None]:
        facts = self._fact(name)
        size = facts.get("size")
        return (size if isinstance(size, int) else self._size(name)), None

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
                f"{sha[:12]}…, not the declared {self._hex(name)[:12]}…: fix the sha256 "
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
        import httpx

        url = self.files[name].location
        try:
            with self._http().stream("GET", url, headers=dict(headers)) as response:
                self._check(name, response)
                yield response
        except httpx.HTTPError as exc:
            raise SourceError(f"{shown(url)}: cannot be read ({type(exc).__name__})") from None

    def _check(self, name: str, response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise SourceError(
                f"{shown(self.files[name].location)}: the server answered HTTP "
                f"{response.status_code}"
            )

    def _size(self, name: str) -> int:
        import httpx

        url = self.files[name].location
        try:
            response = self._http().head(url)
            if response.status_code < 400 and response.headers.get("Content-Length"):
                return int(response.headers["Content-Length"])
        except (httpx.HTTPError, ValueError):
            pass
        with self._get(name, {"Range": "bytes=0-0", "Accept-Encoding": "identity"}) as r:
            total = r.headers.get("Content-Range", "").rpartition("/")[2]
            if r.status_code == 206 and total.isdigit():
                return int(total)
        raise SourceError(
            f"{shown(url)}: the server says neither its size (Content-Length) nor serves a "
            "byte range (Content-Range), so it cannot be checked before apply"
        )

    def _range(self, name: str, start: int, end: int) -> bytes:
        got = bytearray()
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        with self._get(name, headers) as response:
            skip = start if response.status_code == 200 else 0  # Range ignored: skip ahead
            for chunk in response.iter_bytes(CHUNK):
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                got += chunk[: end - start - len(got)]
                if len(got) >= end - start:
                    break
        return bytes(got)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
