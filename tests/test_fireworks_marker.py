"""The digest marker in a Fireworks model's description: its canonical form is what sha256sum
prints, and it reads back exactly as written."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.base.model import AssetDigest
from reconciler.providers.fireworks.marker import (
    MARKER_CHARS,
    files_digest,
    listing,
    split_description,
    with_marker,
)

HEX = "0123456789abcdef" * 4


def digest_of(path: Path) -> AssetDigest:
    data = path.read_bytes()
    return AssetDigest(path.name, len(data), "sha256:" + hashlib.sha256(data).hexdigest())


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_the_digest_is_sha256sum_of_sha256sums_output(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text('{"r": 8}')
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\x00\x01weights" * 1000)
    names = ["adapter_config.json", "adapter_model.safetensors"]
    sums = subprocess.run(
        ["sha256sum", *names], cwd=tmp_path, capture_output=True, check=True
    ).stdout
    expected = "sha256:" + hashlib.sha256(sums).hexdigest()
    files = [digest_of(tmp_path / n) for n in reversed(names)]  # the order given is not used
    assert listing(files) == sums
    assert files_digest(files) == expected


def test_a_marker_reads_back_with_or_without_a_description() -> None:
    digest = "sha256:" + HEX
    assert with_marker("Answers tickets", digest) == f"Answers tickets\nreconciler:sha256={HEX}"
    assert split_description(with_marker("Answers tickets", digest)) == ("Answers tickets", digest)
    assert with_marker(None, digest) == f"reconciler:sha256={HEX}"
    assert split_description(with_marker(None, digest)) == (None, digest)
    assert len(with_marker("x", digest)) == 1 + MARKER_CHARS


@pytest.mark.parametrize(
    "text",
    [
        f"see reconciler:sha256={HEX}",  # not a line of its own
        f"reconciler:sha256={HEX}\nmore",  # not the last line
        f"x\nreconciler:sha256={HEX.upper()}",  # not lower-case hex
        f"x\nreconciler:sha256={HEX}0",  # too long
        f"x\nreconciler:sha256={HEX}\n",  # a line after it
    ],
)
def test_anything_else_is_a_plain_description(text: str) -> None:
    assert split_description(text) == (text, None)


def test_no_description_reads_as_none() -> None:
    assert split_description(None) == (None, None)
    assert split_description("") == (None, None)


def test_what_cannot_be_listed_is_refused() -> None:
    good = AssetDigest("a", 1, "sha256:" + HEX)
    with pytest.raises(ValueError, match="at least one"):
        listing([])
    with pytest.raises(ValueError, match="not a file digest"):
        listing([good, AssetDigest("b\nc", 1, "sha256:" + HEX)])
    with pytest.raises(ValueError, match="not a file digest"):
        listing([AssetDigest("a", 1, "md5:" + HEX[:32])])
    with pytest.raises(ValueError, match="not a sha256 digest"):
        with_marker("x", "sha256:xyz")
