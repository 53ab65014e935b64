"""The Fireworks mount's signed-URL storage: what a PUT or GET must carry, over raw HTTP."""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from fireworks_sandbox import OCTET, TOKEN, Served, adapter_files, lora_body, put, serve

FILES = adapter_files()
CONFIG = FILES["adapter_config.json"]


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path / "data") as served:
        yield served


def declare(sb: Served, model_id: str, sizes: dict[str, int]) -> dict[str, str]:
    """Create a model and ask for upload URLs; returns file name -> signed URL."""
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        if http.get(sb.api(f"models/{model_id}")).status_code == 404:
            http.post(sb.api("models"), json=lora_body(model_id)).raise_for_status()
        answer = http.post(
            sb.api(f"models/{model_id}:getUploadEndpoint"),
            json={"filenameToSize": {name: str(size) for name, size in sizes.items()}},
        )
    answer.raise_for_status()
    urls: dict[str, str] = answer.json()["filenameToSignedUrls"]
    return urls


def gcs_error(answer: httpx.Response) -> str:
    """The <Code> of a GCS XML error."""
    assert answer.headers["content-type"].startswith("application/xml"), answer.text
    text = answer.text
    return text[text.index("<Code>") + 6 : text.index("</Code>")]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def test_a_put_lands_only_as_signed(sb: Served) -> None:
    url = declare(sb, "m", {"adapter_config.json": len(CONFIG)})["adapter_config.json"]
    size_range = f"{len(CONFIG)},{len(CONFIG)}"
    refusals: list[tuple[httpx.Response, int, str]] = [
        # a tampered signature
        (
            put(with_query(url, **{"X-Goog-Signature": "0" * 64}), CONFIG),
            403,
            "SignatureDoesNotMatch",
        ),
        # another content type: it is a signed header
        (put(url, CONFIG, **{"Content-Type": "application/json"}), 403, "SignatureDoesNotMatch"),
        # another range header: signed too
        (put(url, CONFIG, **{"X-Goog-Content-Length-Range": "1,1"}), 403, "SignatureDoesNotMatch"),
        # the signed range with a body of another length
        (
            put(url, CONFIG + b" ", **{"X-Goog-Content-Length-Range": size_range}),
            400,
            "EntityTooLarge",
        ),
        (
            put(url, CONFIG[:-1], **{"X-Goog-Content-Length-Range": size_range}),
            400,
            "EntityTooSmall",
        ),
        # a GET through an upload URL: the method is signed
        (httpx.get(url), 403, "SignatureDoesNotMatch"),
        # a method storage does not take
        (httpx.delete(url), 405, "MethodNotAllowed"),
        # credentials sent along: refused, so a leaked API key shows
        (put(url, CONFIG, Authorization=f"Bearer {TOKEN}"), 400, "InvalidArgument"),
        # the query's auth parameters missing
        (put(url.split("?")[0], CONFIG), 400, "AuthorizationQueryParametersError"),
    ]
    for answer, status, code in refusals:
        assert (answer.status_code, gcs_error(answer)) == (status, code), answer.request
    assert not list((sb.data_dir / "fireworks" / "objects").rglob("*.json"))
    assert put(url, CONFIG).status_code == 200


def test_signed_urls_expire_after_an_hour(sb: Served) -> None:
    url = declare(sb, "m", {"adapter_config.json": len(CONFIG)})["adapter_config.json"]
    sb.clock.advance(3600)
    sb.clock.advance(1)
    answer = put(url, CONFIG)
    assert (answer.status_code, gcs_error(answer)) == (400, "ExpiredToken")
    assert "expired at" in answer.text
    fresh = declare(sb, "m", {"adapter_config.json": len(CONFIG)})["adapter_config.json"]
    assert put(fresh, CONFIG).status_code == 200


def test_a_chunked_body_longer_than_signed_is_cut_off(sb: Served) -> None:
    url = declare(sb, "m", {"blob.bin": 10})["blob.bin"]

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b"x" * 6
        yield b"x" * 6

    answer = httpx.put(
        url, content=body(), headers={"Content-Type": OCTET, "X-Goog-Content-Length-Range": "10,10"}
    )
    assert (answer.status_code, gcs_error(answer)) == (400, "EntityTooLarge")
    assert not list((sb.data_dir / "fireworks" / "tmp").iterdir())


def test_declaring_again_keeps_what_landed_with_the_same_size(sb: Served) -> None:
    sizes = {
        "adapter_config.json": len(CONFIG),
        "adapter_model.safetensors": len(FILES["adapter_model.safetensors"]),
    }
    urls = declare(sb, "m", sizes)
    assert put(urls["adapter_config.json"], CONFIG).status_code == 200
    # The SDK's helper asks again mid-upload with the whole map: what landed stays landed.
    again = declare(sb, "m", sizes)
    put(again["adapter_model.safetensors"], FILES["adapter_model.safetensors"]).raise_for_status()
    validate = sb.api("models/m:validateUpload")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(validate, headers=headers).status_code == 200
    # A READY model's files are fixed: an old, unexpired upload URL no longer writes.
    late = put(urls["adapter_config.json"], CONFIG)
    assert (late.status_code, gcs_error(late)) == (403, "AccessDenied")


def test_declaring_another_size_forgets_the_file(sb: Served) -> None:
    first = declare(sb, "m", {"adapter_config.json": len(CONFIG)})["adapter_config.json"]
    put(first, CONFIG).raise_for_status()
    declare(sb, "m", {"adapter_config.json": len(CONFIG) + 1})
    stale = put(first, CONFIG)
    assert (stale.status_code, gcs_error(stale)) == (403, "AccessDenied")
    answer = httpx.get(
        sb.api("models/m:validateUpload"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.json()["code"] == 9 and "adapter_config.json" in answer.json()["message"]


def test_a_256_mib_upload_and_download_use_constant_memory(sb: Served) -> None:
    size = 256 << 20
    chunk = bytes(range(256)) * 4096  # 1 MiB, sent 256 times
    expected = hashlib.sha256()
    for _ in range(size // len(chunk)):
        expected.update(chunk)
    sizes = {"adapter_config.json": len(CONFIG), "adapter_model.safetensors": size}
    urls = declare(sb, "big", sizes)
    put(urls["adapter_config.json"], CONFIG).raise_for_status()

    def body() -> Iterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    headers = {
        "Content-Type": OCTET,
        "X-Goog-Content-Length-Range": f"{size},{size}",
        "Content-Length": str(size),
    }
    tracemalloc.start()
    try:
        answer = httpx.put(urls["adapter_model.safetensors"], content=body(), headers=headers)
        _, upload_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 200, answer.text
    assert upload_peak < 32 << 20, f"peak {upload_peak} bytes while uploading {size}"

    auth = {"Authorization": f"Bearer {TOKEN}"}
    # configOnly: these bytes are no safetensors file, and need not be for this test
    validate = httpx.get(sb.api("models/big:validateUpload?configOnly=true"), headers=auth)
    assert validate.status_code == 200, validate.text
    links = httpx.get(sb.api("models/big:getDownloadEndpoint"), headers=auth).json()
    got, received = hashlib.sha256(), 0
    tracemalloc.start()
    try:
        with httpx.stream("GET", links["filenameToSignedUrls"]["adapter_model.safetensors"]) as r:
            assert r.status_code == 200 and r.headers["content-length"] == str(size)
            for block in r.iter_bytes():
                got.update(block)
                received += len(block)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert download_peak < 32 << 20, f"peak {download_peak} bytes while downloading {size}"
    assert (received, got.hexdigest()) == (size, expected.hexdigest())


def test_concurrent_uploads_of_one_file_leave_one_whole_copy(sb: Served) -> None:
    url = declare(sb, "m", {"adapter_config.json": len(CONFIG)})["adapter_config.json"]
    results: list[int] = []

    def send() -> None:
        results.append(put(url, CONFIG).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8
    stored = list((sb.data_dir / "fireworks" / "objects").rglob("adapter_config.json"))
    assert [p.read_bytes() for p in stored] == [CONFIG]
    assert not list((sb.data_dir / "fireworks" / "tmp").iterdir())


def test_download_urls_are_get_only_and_expire(sb: Served) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    urls = declare(sb, "m", {name: len(data) for name, data in FILES.items()})
    for name, data in FILES.items():
        put(urls[name], data).raise_for_status()
    httpx.get(sb.api("models/m:validateUpload"), headers=headers).raise_for_status()
    links: dict[str, Any] = httpx.get(
        sb.api("models/m:getDownloadEndpoint"), headers=headers
    ).json()
    link = links["filenameToSignedUrls"]["adapter_config.json"]
    assert httpx.get(link).content == CONFIG
    refused = put(link, CONFIG)
    assert (refused.status_code, gcs_error(refused)) == (403, "SignatureDoesNotMatch")
    sb.clock.advance(3601)
    expired = httpx.get(link)
    assert (expired.status_code, gcs_error(expired)) == (400, "ExpiredToken")
