"""A file cut short or grown while it is uploaded: one clear error naming the file, at once,
with no retry, instead of an HTTP framing error from deep in the client."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_http_retry import ACCOUNT, Scripted, scripted  # noqa: F401 (the fixture)

from reconciler.adapters.assets import HashingReader
from reconciler.base.errors import AssetChangedError
from reconciler.base.model import AssetFile
from reconciler.providers.cloudflare.api import CloudflareProvider
from reconciler.providers.endpoint import Endpoint

SIZE = 600_000  # several reads of the HTTP client's 64 KiB chunks


def grow(path: Path, count: int) -> None:
    with path.open("ab") as f:
        f.write(b"y" * count)


@pytest.mark.parametrize(
    ("change", "now"),
    [
        (lambda p: p.write_bytes(b"x" * 1000), "1000 bytes now"),
        (lambda p: grow(p, 5000), f"{SIZE + 5000} bytes now"),
    ],
    ids=["truncated", "grown"],
)
def test_a_file_changed_during_its_upload_is_named(
    scripted: Scripted,  # noqa: F811
    tmp_path: Path,
    change: object,
    now: str,
) -> None:
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(b"a" * SIZE)
    slept: list[float] = []
    provider = CloudflareProvider(Endpoint(scripted.url, "t0ken", "test"))
    provider._api._sleep = slept.append
    changed: list[int] = []

    def progress(done: int, total: int) -> None:
        if not changed:  # after the first chunk has gone out
            changed.append(done)
            change(path)  # type: ignore[operator]

    with pytest.raises(AssetChangedError) as info:
        provider.upload_asset(
            ACCOUNT, "ft-1", AssetFile("adapter_model.safetensors", path), progress
        )
    provider.close()
    assert str(info.value) == (
        f"{path} changed while it was uploaded ({SIZE} bytes when the upload began, {now}); "
        "the upload was abandoned and nothing was recorded for it: run apply again once "
        "the file is settled"
    )
    assert slept == []  # not retried: the file is not what the plan saw


def test_an_unchanged_file_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    with path.open("rb") as f:
        reader = HashingReader(f, "f")
        assert reader.read(10) + reader.read() == b"abc" * 1000
        assert reader.read() == b"" and reader.read(0) == b""
        assert reader.result().size == 3000
