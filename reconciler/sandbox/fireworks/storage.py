"""The signed-URL object store behind getUploadEndpoint and getDownloadEndpoint.

Fireworks hands out Google Cloud Storage V4 signed URLs; the sandbox serves its own under
`/fireworks/_storage/<model uid>/<file name>`, shaped like them (X-Goog-Algorithm,
X-Goog-Credential, X-Goog-Date, X-Goog-Expires, X-Goog-SignedHeaders, X-Goog-Signature), and
checks what GCS checks:

- The signature: HMAC-SHA256, with a random key kept in the state file, over the method, the
  path, the other query parameters and the signed headers: `host` always; for an upload also
  `content-type` (application/octet-stream) and `x-goog-content-length-range` (`N,N`, the
  declared size), exactly as Fireworks' example and the SDK's dataset helper send them. A
  wrong method, host, content type or range header is 403 SignatureDoesNotMatch, as on GCS
  where those headers are part of the signature.
- The expiry: X-Goog-Date + X-Goog-Expires (3600 s as issued), read from the sandbox clock.
- The body against the range: a body of another length is 400 EntityTooLarge or
  EntityTooSmall. It is streamed to disk, sized and hashed on the way: never whole in memory.

Errors are GCS's XML (`<Error><Code>..</Code><Message>..</Message></Error>`). Sandbox choice:
a request that carries an `Authorization` header is refused (400 InvalidArgument, "only one
auth mechanism"), so a client that leaks its Fireworks API key to the storage host fails
loudly; GCS itself answers a signed URL plus another credential in the same spirit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from xml.sax.saxutils import escape

from reconciler.sandbox.common.uploads import UploadTooLarge

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from reconciler.sandbox.fireworks.store import FireworksStore

ALGORITHM = "GOOG4-HMAC-SHA256"
CREDENTIAL_ID = "reconciler-sandbox"
URL_SECONDS = 3600  # "The signed URL expires after 1 hour" (byo-lora-providers.md 1.5)
MAX_URL_SECONDS = 604800  # GCS's longest V4 signature: 7 days
CONTENT_TYPE = "application/octet-stream"
CHUNK = 1 << 20
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_PATH_RE = re.compile(r"/(?P<uid>[0-9a-f]{32})/(?P<filename>[^/]+)")


class StorageError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def xml(self) -> bytes:
        details = f"<Details>{escape(self.details)}</Details>" if self.details else ""
        return (
            "<?xml version='1.0' encoding='UTF-8'?><Error>"
            f"<Code>{self.code}</Code><Message>{escape(self.message)}</Message>{details}</Error>"
        ).encode()


@dataclass(frozen=True)
class Upload:
    """A PUT the signature allowed: where it goes and how long it must be."""

    uid: str
    filename: str
    size: int


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime(_DATE_FORMAT)


def _canonical(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> bytes:
    params = sorted((k, v) for k, v in query.items() if k != "X-Goog-Signature")
    lines = [
        method,
        path,
        urlencode(params, quote_via=quote, safe="-_.~"),
        *(f"{name}:{headers[name]}" for name in sorted(headers)),
        ";".join(sorted(headers)),
    ]
    return "\n".join(lines).encode()


class Signer:
    def __init__(self, key: bytes, prefix: str) -> None:
        self._key = key
        self.prefix = prefix  # the storage route's path, e.g. /fireworks/_storage

    def _signature(self, canonical: bytes) -> str:
        return hmac.new(self._key, canonical, hashlib.sha256).hexdigest()

    def url(
        self, origin: str, uid: str, filename: str, now: float, *, seconds: int, size: int | None
    ) -> str:
        """A signed URL: for a PUT of exactly `size` bytes, or (size None) for a GET."""
        path = f"{self.prefix}/{uid}/{quote(filename, safe='')}"
        headers = {"host": urlsplit(origin).netloc}
        if size is not None:
            headers["content-type"] = CONTENT_TYPE
            headers["x-goog-content-length-range"] = f"{size},{size}"
        stamp = _stamp(now)
        query = {
            "X-Goog-Algorithm": ALGORITHM,
            "X-Goog-Credential": f"{CREDENTIAL_ID}/{stamp[:8]}/auto/storage/goog4_request",
            "X-Goog-Date": stamp,
            "X-Goog-Expires": str(seconds),
            "X-Goog-SignedHeaders": ";".join(sorted(headers)),
        }
        method = "GET" if size is None else "PUT"
        query["X-Goog-Signature"] = self._signature(_canonical(method, path, query, headers))
        return f"{origin}{path}?{urlencode(query, quote_via=quote, safe='-_.~')}"

    def verify(self, environ: WSGIEnvironment, now: float) -> tuple[str, str]:
        """(uid, file name) of a request the URL's signature allows; StorageError if not."""
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        if method not in ("GET", "PUT"):
            raise StorageError(405, "MethodNotAllowed", f"{method} is not allowed on this URL.")
        if environ.get("HTTP_AUTHORIZATION") is not None:
            raise StorageError(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed: a signed URL takes no Authorization header.",
            )
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        expires_at = _expiry(query)
        if now > expires_at:
            raise StorageError(
                400,
                "ExpiredToken",
                "The provided token has expired.",
                f"Request signature expired at: {_stamp(expires_at)}",
            )
        names = query["X-Goog-SignedHeaders"].split(";")
        headers = {name: _header(environ, name) for name in names}
        expected = self._signature(_canonical(method, path, query, headers))
        if not hmac.compare_digest(expected, query.get("X-Goog-Signature", "")):
            raise StorageError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you"
                " provided. Check your Google secret key and signing method.",
            )
        match = _PATH_RE.fullmatch(path[len(self.prefix) :])
        if match is None:  # a signature the sandbox made names a path it serves
            raise StorageError(404, "NoSuchKey", "The specified key does not exist.")
        return match.group("uid"), match.group("filename")


def _expiry(query: Mapping[str, str]) -> float:
    needed = ("X-Goog-Algorithm", "X-Goog-Date", "X-Goog-Expires", "X-Goog-SignedHeaders")
    missing = [k for k in (*needed, "X-Goog-Signature") if not query.get(k)]
    if missing or query["X-Goog-Algorithm"] != ALGORITHM:
        raise StorageError(
            400,
            "AuthorizationQueryParametersError",
            "Query-string authentication requires the X-Goog-Algorithm, X-Goog-Credential,"
            " X-Goog-Date, X-Goog-Expires, X-Goog-SignedHeaders and X-Goog-Signature"
            f" parameters ({ALGORITHM}).",
        )
    try:
        signed_at = datetime.strptime(query["X-Goog-Date"], _DATE_FORMAT)
        seconds = int(query["X-Goog-Expires"])
    except ValueError:
        seconds = -1
    if not 1 <= seconds <= MAX_URL_SECONDS:
        raise StorageError(
            400,
            "AuthorizationQueryParametersError",
            f"X-Goog-Date must be YYYYMMDDTHHMMSSZ and X-Goog-Expires 1 to {MAX_URL_SECONDS}.",
        )
    return signed_at.replace(tzinfo=timezone.utc).timestamp() + seconds


def _header(environ: WSGIEnvironment, name: str) -> str:
    key = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}.get(name)
    key = key or "HTTP_" + name.upper().replace("-", "_")
    return str(environ.get(key, "")).strip()


def _range(environ: WSGIEnvironment) -> int:
    """N of the signed `x-goog-content-length-range: N,N` (the signature checked it)."""
    low, _, high = _header(environ, "x-goog-content-length-range").partition(",")
    return int(high) if low == high and high.isdigit() else -1


def _wrong_length(got: int, size: int) -> StorageError:
    code = "EntityTooLarge" if got > size else "EntityTooSmall"
    return StorageError(
        400,
        code,
        f"Your proposed upload is {'larger' if got > size else 'smaller'} than the"
        f" x-goog-content-length-range allows ({size},{size}).",
        f"Received {got} bytes.",
    )


def receive(environ: WSGIEnvironment, store: FireworksStore, uid: str, filename: str) -> str:
    """Stream a PUT's body into place; its sha256 is kept with the file, its MD5 (GCS's ETag)
    is returned. StorageError if it is not what the URL was signed for."""
    from werkzeug.wsgi import get_input_stream

    from reconciler.sandbox.fireworks.store import Landing

    size = _range(environ)
    declared = str(environ.get("CONTENT_LENGTH") or "")
    if declared.isdigit() and int(declared) != size:
        raise _wrong_length(int(declared), size)  # before reading a byte
    spool = store.spool(size)
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        stream = get_input_stream(environ, max_content_length=None)
        try:
            while chunk := stream.read(CHUNK):
                spool.write(chunk)
                md5.update(chunk)
        except UploadTooLarge:
            raise _wrong_length(spool.size, size) from None
        spool.flush()
        spool.close()
        if spool.size != size:
            raise _wrong_length(spool.size, size)
        landing = store.land_file(uid, filename, spool, md5.hexdigest())
    finally:
        spool.discard()
    if landing != Landing.LANDED:
        raise StorageError(
            403,
            "AccessDenied",
            "This upload URL no longer leads anywhere: the model was deleted, validated, or"
            " its files were declared again.",
            f"upload {landing}",
        )
    return md5.hexdigest()


def etag_headers(md5: str) -> list[tuple[str, str]]:
    digest = base64.b64encode(bytes.fromhex(md5)).decode()
    return [("ETag", f'"{md5}"'), ("x-goog-hash", f"md5={digest}")]


def open_object(path: Path) -> tuple[int, Iterator[bytes]]:
    """(size, chunks) of a stored file, opened now (FileNotFoundError if it is gone): a
    delete that comes later does not cut a download short."""
    handle = path.open("rb")
    size = os.fstat(handle.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    return size, chunks()
