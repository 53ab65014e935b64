"""The one check of every value a Hub or a file host gives back, where it enters: a commit
before it names a path or reaches the lock, a sha256 before it makes a digest, a size before
it bounds a read, a blob id before bytes are held to it, a file name before it is joined to a
folder. Each raises SourceError naming what was expected; the value itself is shown only
through repr and cut short (it may hold escape sequences or be megabytes long)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Any

from reconciler.sources.base import SourceError

COMMIT = re.compile(r"[0-9a-f]{40}")  # a git commit, as the Hub names it
SHA256 = re.compile(r"[0-9a-f]{64}")
BLOB_ID = re.compile(r"[0-9a-f]{40}")  # a git blob id: sha1 of "blob <size>\0" + bytes
# far beyond any adapter (a rank-256 LoRA of a 70B model is a few GB), far below what would
# overflow anything that adds sizes up
MAX_SIZE = 1 << 40
SHOWN = 60
_ODD = {"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"}  # controls, formats (U+202E), unassigned


def is_loopback(host: str) -> bool:
    """localhost or a loopback address: where plain http is allowed (tests, the sandbox)."""
    host = host.lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def commit(value: Any, where: str) -> str:
    """A commit sha from the Hub (a refs answer, a model info): 40 lowercase hex."""
    if isinstance(value, str) and COMMIT.fullmatch(value):
        return value
    raise SourceError(
        f"{where}: the Hub named {shown_value(value)}, which is not a commit (40 hex digits)"
    )


def sha256(value: Any, where: str) -> str:
    """An LFS sha256 from the Hub, bare: 64 lowercase hex."""
    if isinstance(value, str) and SHA256.fullmatch(value):
        return value
    raise SourceError(f"{where}: the Hub's sha256 is not 64 hex digits ({shown_value(value)})")


def blob_id(value: Any, where: str) -> str:
    """A file's git blob id from the Hub: 40 lowercase hex."""
    if isinstance(value, str) and BLOB_ID.fullmatch(value):
        return value
    raise SourceError(f"{where}: the Hub's blobId is not a git sha1 ({shown_value(value)})")


def size(value: Any, where: str, who: str = "the Hub's") -> int:
    """A file's size in bytes: a whole number from 0 to MAX_SIZE (not a bool, not 1.5)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE:
        return value
    raise SourceError(f"{where}: {who} size is not a count of bytes ({shown_value(value)})")


def size_text(text: str, where: str, who: str = "the server's") -> int:
    """A size in a header (Content-Length, Content-Range's total): ASCII digits only
    (str.isdigit() takes '²', which int() refuses), then as size()."""
    value: Any = int(text) if re.fullmatch(r"[0-9]{1,16}", text) else text
    return size(value, where, who)


def file_name(value: Any, where: str) -> str:
    """A path in a repo as the Hub lists it: relative, no '.' or '..' part, no empty part,
    no backslash or control character (it is joined to folders and shown)."""
    if isinstance(value, str) and value and len(value) <= 1024 and "\\" not in value:
        parts = value.split("/")
        odd = any(unicodedata.category(ch) in _ODD for ch in value)
        if not odd and all(p not in ("", ".", "..") for p in parts):
            return value
    raise SourceError(f"{where}: {shown_value(value)} is not a file name in the repo")
