"""Every answer huggingface_hub reads for a Hub source, bounded (M4 and L9 of issue 20).

huggingface_hub writes a download until the server stops (an endless body filled 10 GB in a
minute), decodes gzip in memory, waits without a timeout, and follows any redirect. It reads
through one shared HTTP client, made by a factory it lets a caller set: this module's client
sends every request through `Bounded`, a transport that

  - refuses a hop to plain http unless the Hub itself is on plain http on loopback, and then
    only to loopback (as the config holds a URL source);
  - passes at most `limit` bytes of a body, counted after decoding (gzip and deflate are
    decoded here, in steps of CHUNK, so a bomb is stopped at the limit, not inflated whole);
  - gives a body DEADLINE + limit / MIN_RATE seconds, checked on every network read, and each
    read a timeout.

What the limit is comes from the caller, per call (`bounded(limit, https_only)`): the listed
size of a file, JSON_LIMIT for an API answer.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx2

from reconciler.sources import checked
from reconciler.sources.base import SourceError

CHUNK = 256 * 1024
JSON_LIMIT = 64 << 20  # a model info of thousands of files is a few MB
DEADLINE = 60.0  # seconds any answer is given, whatever its size
MIN_RATE = 256 * 1024  # bytes a second: slower than this, an answer is given up
TIMEOUT = httpx2.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)


@dataclass(frozen=True)
class Bounds:
    limit: int  # bytes of body, after decoding
    http_host: str | None  # the Hub's host if it is on plain http (None: https only)
    what: str  # for messages: hf://repo@commit/file


_BOUNDS: ContextVar[Bounds | None] = ContextVar("reconciler_hub_bounds", default=None)


@contextmanager
def bounded(limit: int, http_host: str | None, what: str) -> Iterator[None]:
    """Calls to huggingface_hub inside this block are held to these bounds."""
    token = _BOUNDS.set(Bounds(limit, http_host, what))
    try:
        yield
    finally:
        _BOUNDS.reset(token)


_installed: list[bool] = []


def install(hub: Any) -> None:
    """Make huggingface_hub's shared client one that sends through Bounded (once)."""
    if _installed:
        return
    from huggingface_hub.utils import _http

    def factory() -> httpx2.Client:
        return httpx2.Client(
            event_hooks={"request": [_http.hf_request_event_hook]},
            follow_redirects=True,
            timeout=TIMEOUT,
            transport=Bounded(httpx2.HTTPTransport()),
        )

    hub.set_client_factory(factory)
    _installed.append(True)


class Bounded(httpx2.BaseTransport):
    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        bounds = _BOUNDS.get()
        if bounds is None:  # not a call of a Hub source: as huggingface_hub would send it
            return self._inner.handle_request(request)
        _hop_allowed(request.url, bounds)
        response = self._inner.handle_request(request)
        if "/resolve/" in request.url.path:
            _names_checked(response, bounds)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity", "gzip", "deflate"):
            response.close()
            raise SourceError(
                f"{bounds.what}: the Hub sent an answer encoded as "
                f"{checked.shown_value(encoding[:20])}, which is not read"
            )
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() != "content-encoding"
            and (encoding in ("", "identity") or k.lower() != "content-length")
        ]
        assert isinstance(response.stream, httpx2.SyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=headers,
            stream=_Body(response.stream, encoding, bounds),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()


_ETAG = re.compile(r'(?:W/)?"?([0-9a-f]{40}|[0-9a-f]{64})"?')


def _names_checked(response: httpx2.Response, bounds: Bounds) -> None:
    """A file's answer names what huggingface_hub names cache files after: its blob (ETag,
    X-Linked-Etag: a git sha1 or a sha256) and its commit (X-Repo-Commit: 40 hex); anything
    else ('../x', an absolute path) would be a path outside the cache."""
    for header in ("ETag", "X-Linked-Etag", "X-Repo-Commit"):
        value = response.headers.get(header)
        if value is None:
            continue
        ok = (
            checked.COMMIT.fullmatch(value)
            if header == "X-Repo-Commit"
            else _ETAG.fullmatch(value.strip())
        )
        if not ok:
            response.close()
            raise SourceError(
                f"{bounds.what}: the Hub's {header} is not a git sha1 or sha256 "
                f"({checked.shown_value(value)})"
            )


def _hop_allowed(url: httpx2.URL, bounds: Bounds) -> None:
    """https anywhere; plain http only to the Hub's own plain-http host (HF_ENDPOINT), or,
    from a loopback Hub, to loopback."""
    if url.scheme == "https":
        return
    home = bounds.http_host
    same = home is not None and (
        url.host == home or (checked.is_loopback(home) and checked.is_loopback(url.host))
    )
    if url.scheme == "http" and same:
        return
    raise SourceError(
        f"{bounds.what}: a redirect to plain {url.scheme}://{url.host} is refused (the bytes "
        "could be changed on the way): https:// only, plain http:// only to HF_ENDPOINT's "
        "own host"
    )


class _Body(httpx2.SyncByteStream):
    """A body, decoded in bounded steps, cut at the limit and the deadline."""

    def __init__(self, inner: httpx2.SyncByteStream, encoding: str, bounds: Bounds) -> None:
        self._inner, self._bounds = inner, bounds
        wbits = 31 if encoding == "gzip" else (15 if encoding == "deflate" else 0)
        self._zlib = zlib.decompressobj(wbits) if wbits else None

    def __iter__(self) -> Iterator[bytes]:
        bounds = self._bounds
        deadline = time.monotonic() + DEADLINE + bounds.limit / MIN_RATE
        got = 0
        for raw in self._inner:
            for chunk in self._decoded(raw):
                got += len(chunk)
                if got > bounds.limit:
                    raise SourceError(
                        f"{bounds.what}: the Hub sent more than the {bounds.limit:,} bytes "
                        "expected: nothing was kept of it"
                    )
                yield chunk
            if time.monotonic() > deadline:
                raise SourceError(
                    f"{bounds.what}: the Hub sends too slowly ({got:,} bytes in "
                    f"{DEADLINE + bounds.limit / MIN_RATE:.0f} s): given up"
                )

    def _decoded(self, raw: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            yield raw
            return
        try:
            out = self._zlib.decompress(raw, CHUNK)
            while out:
                yield out
                out = self._zlib.decompress(self._zlib.unconsumed_tail, CHUNK)
        except zlib.error:
            raise SourceError(
                f"{self._bounds.what}: the Hub's compressed answer is corrupt"
            ) from None

    def close(self) -> None:
        self._inner.close()
