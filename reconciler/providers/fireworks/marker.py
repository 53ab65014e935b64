"""The digest marker: what a Fireworks model's description says about the files it was made of.

A Fireworks Model carries no content hash, etag or label, so the files' digest is written into
its description, as its last line:

    <the config's description>\\n
    reconciler:sha256=<64 lower-case hex>

or the marker line alone when the config gives no description. The hex is the sha256 of the
canonical listing of the adapter's files: for each file, in order of its name (code point
order), the line `sha256sum` prints for it,

    <64 lower-case hex of the file's sha256><two spaces><file name>\\n

so that, in the adapter's folder, it can be checked by hand:

    sha256sum adapter_config.json adapter_model.safetensors | sha256sum

(names listed in sorted order). The size is not in it: the content's sha256 settles it. The
marker is found only on the description's last line and only in exactly this shape, so a
description that merely mentions it is left alone; the config's own description may not hold
a line starting with `reconciler:` (items.py says so), so what is read back is unambiguous.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from reconciler.base.model import AssetDigest

PREFIX = "reconciler:sha256="
MARKER_CHARS = len(PREFIX) + 64 + 1  # the marker line and the line break before it
_MARKER = re.compile(r"(?:\A|\n)reconciler:sha256=([0-9a-f]{64})\Z")
_SHA = re.compile(r"sha256:([0-9a-f]{64})")


def listing(files: Iterable[AssetDigest]) -> bytes:
    """The canonical listing the marker's digest is taken over (see the module docstring)."""
    lines: list[str] = []
    for file in sorted(files, key=lambda f: f.name):
        match = _SHA.fullmatch(file.sha256)
        if match is None or "\n" in file.name or "\\" in file.name:
            # sha256sum escapes such names: refused rather than spelled two ways
            raise ValueError(f"{file.name!r}: not a file digest the marker can list")
        lines.append(f"{match.group(1)}  {file.name}\n")
    if not lines:
        raise ValueError("the marker lists at least one file")
    return "".join(lines).encode("utf-8")


def files_digest(files: Iterable[AssetDigest]) -> str:
    """'sha256:<hex>' of the canonical listing of the files."""
    return "sha256:" + hashlib.sha256(listing(files)).hexdigest()


def with_marker(description: str | None, digest: str) -> str:
    """The description to send: the config's description, then the marker line."""
    match = _SHA.fullmatch(digest)
    if match is None:
        raise ValueError(f"{digest!r} is not a sha256 digest")
    line = PREFIX + match.group(1)
    return f"{description}\n{line}" if description else line


def split_description(text: str | None) -> tuple[str | None, str | None]:
    """(the config's description, the marker's 'sha256:<hex>') of a description read back;
    either None where absent. A description without a marker is returned whole."""
    if not text:
        return None, None
    match = _MARKER.search(text)
    if match is None:
        return text, None
    own = text[: match.start()]
    return (own or None), "sha256:" + match.group(1)
