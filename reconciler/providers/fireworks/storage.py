"""The signed URLs of getUploadEndpoint and getDownloadEndpoint, and the PUT of a file to one.

Fireworks hands out Google Cloud Storage V4 signed URLs. The PUT goes to the storage host, not
to Fireworks: through a client of its own that never holds the API key (a signed URL is its
own credential, and the key must not reach another host). It sends exactly what the official
SDK sends (fireworks-ai 1.2.30, lib/dataset_upload.py), since both headers are part of the
URL's signature:

    Content-Type: application/octet-stream
    X-Goog-Content-Length-Range: <size>,<size>

with the body streamed from the file (Content-Length: size, never chunked), hashed on the
way. A URL must be https, or plain http to a loopback address (the sandbox): the bytes of an
adapter are not sent in the clear across a network. A URL's query (its signature) is never
shown: messages name the host alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import time
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from reconciler.adapters.assets import HashingReader
from reconciler.base.errors import AssetChangedError, EndpointError, ProviderError
from reconciler.base.model import AssetDigest
from reconciler.base.untrusted import visible
from reconciler.config.items import url_allowed
from reconciler.providers.base import Progress
from reconciler.providers.retry import RETRY_STATUSES, RetryPolicy

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("reconciler.fireworks")

CONTENT_TYPE = "application/octet-stream"
MAX_URL = 8192  # a V4 signed URL is well under 2 kB
CHUNK = 4 << 20
TIMEOUTS = {"connect": 10.0, "read": 120.0, "write": 300.0, "pool": 10.0}
# The SDK asks again after 45 minutes: a V4 URL is signed for one hour.
REFRESH_AFTER = 45 * 60.0
_XML_FIELD = re.compile(r"<(Code|Message)>([^<]{0,300})</\1>")


def host_of(url: str) -> str:
    """What a message may say of a signed URL: its host, never its signature."""
    return visible(urlsplit(url).netloc[:100]) or "?"


def signed_urls(what: str, answer: Any, names: Collection[str]) -> dict[str, str]:
    """filenameToSignedUrls of an answer, checked: one URL for each name asked about and no
    other, each https (or plain http to a loopback address), without credentials in it."""
    if not isinstance(answer, dict):
        raise EndpointError(f"{what}: the answer is not a JSON object")
    urls = answer.get("filenameToSignedUrls", {})  # proto-JSON leaves an empty map out
    if not isinstance(urls, dict):
        raise EndpointError(f"{what}: filenameToSignedUrls is not a map of URLs")
    missing = sorted(set(names) - set(urls))
    extra = sorted(set(urls) - set(names))
    if missing or extra:
        said = [f"none for {', '.join(missing)}"] if missing else []
        said += [f"some for files not asked about ({len(extra)})"] if extra else []
        raise EndpointError(f"{what}: the answer's signed URLs are wrong: {'; '.join(said)}")
    for name, url in urls.items():
        if not isinstance(url, str) or len(url) > MAX_URL:
            raise EndpointError(f"{what}: the signed URL for {name} is not a URL")
        parts = urlsplit(url)
        if not url_allowed(url) or parts.username is not None or parts.password is not None:
            raise EndpointError(
                f"{what}: the signed URL for {name} (host {host_of(url)}) is not https, or "
                "not plain http to a loopback address, or carries credentials: refused"
            )
    return dict(urls)


class SignedStorage:
    """PUTs to signed URLs, with the API client's retry policy but none of its credentials."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool = True,
    ) -> None:
        self._transport = transport
        self._retry = retry or RetryPolicy.from_env()
        self._sleep = sleep
        self._verify = verify
        self._rng = random.Random()
        self._made: httpx.Client | None = None

    @property
    def _client(self) -> httpx.Client:
        if self._made is None:
            import httpx

            self._made = httpx.Client(
                timeout=httpx.Timeout(**TIMEOUTS),
                transport=self._transport,
                follow_redirects=False,
                verify=self._verify,
                headers={"User-Agent": "reconciler"},  # and no Authorization, ever
            )
        return self._made

    def close(self) -> None:
        if self._made is not None:
            self._made.close()

    def put(
        self,
        what: str,
        url: str,
        f: BinaryIO,
        size: int,
        name: str,
        progress: Progress | None = None,
    ) -> AssetDigest:
        """Stream the open file `f` to `url`: `size` bytes, as declared to getUploadEndpoint;
        the digest of exactly the bytes sent. A PUT of the same bytes to the same URL is
        idempotent: a lost answer is sent again."""
        reader = HashingReader(f, name, progress)  # holds the file to its size from here on
        if os.fstat(f.fileno()).st_size != size:
            raise AssetChangedError(
                f"{name} changed after its size was declared ({size} bytes then, "
                f"{os.fstat(f.fileno()).st_size} now); nothing was sent: run apply again"
            )
        headers = {
            "Content-Type": CONTENT_TYPE,
            "X-Goog-Content-Length-Range": f"{size},{size}",
            "Content-Length": str(size),
        }
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            reader.seek(0)
            why = self._attempt(what, url, headers, reader, attempt == attempts)
            if why is None:
                return reader.result()
            delay = self._retry.delay(attempt, None, self._rng)
            log.log(
                logging.WARNING if attempt == 1 else logging.INFO,
                "%s: %s; retrying in %.1fs (attempt %d of %d)",
                what,
                why,
                delay,
                attempt + 1,
                attempts,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")

    def _attempt(
        self, what: str, url: str, headers: dict[str, str], reader: HashingReader, last: bool
    ) -> str | None:
        """None when stored; why not, when another attempt may mend it; else the error."""
        import httpx

        host = host_of(url)
        try:
            response = self._client.put(url, content=_chunks(reader), headers=headers)
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise EndpointError(f"{what}: the request to {host} could not be formed") from None
        except httpx.TransportError as exc:
            why = f"{host}: {type(exc).__name__}"
            if last:
                raise EndpointError(f"{what}: {why}, {self._retry.attempts} times") from None
            return why
        if 200 <= response.status_code < 300:
            return None
        remote = storage_error(response.text[:4000], response.status_code)
        if response.status_code in RETRY_STATUSES and not last:
            return f"{host} answered {remote}"
        raise ProviderError(f"{what}: the storage host {host} answered {remote}")

    def digest(self, what: str, url: str, name: str, max_bytes: int) -> AssetDigest:
        """The sha256 and size of the object at a signed GET URL, streamed, never whole in
        memory; more than `max_bytes` is an EndpointError (a file is not that large)."""
        import httpx

        host = host_of(url)
        hashed, size = hashlib.sha256(), 0
        try:
            with self._client.stream("GET", url) as response:
                if not 200 <= response.status_code < 300:
                    text = response.read()[:4000].decode("utf-8", "replace")
                    remote = storage_error(text, response.status_code)
                    raise ProviderError(f"{what}: the storage host {host} answered {remote}")
                for chunk in response.iter_bytes(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise EndpointError(f"{what}: {name} is over {max_bytes:,} bytes")
                    hashed.update(chunk)
        except httpx.HTTPError as exc:
            raise EndpointError(f"{what}: {host}: {type(exc).__name__}") from None
        return AssetDigest(name=name, size=size, sha256="sha256:" + hashed.hexdigest())


def _chunks(reader: HashingReader) -> Iterator[bytes]:
    while chunk := reader.read(CHUNK):
        yield chunk


def storage_error(text: str, status: int) -> str:
    """GCS's XML error (<Code>, <Message>) as one visible line: 'HTTP 403 (Code: Message)'."""
    found = dict(_XML_FIELD.findall(text))
    said = ": ".join(v for v in (found.get("Code"), found.get("Message")) if v)
    return f"HTTP {status}" + (f" ({visible(said[:300])})" if said else "")
