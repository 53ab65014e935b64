"""How a remote asset's source is shown: hf://acme/support-lora@3f2a91c, or its URL without
the query that may carry a signature."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_HF = re.compile(r"hf://(?P<repo>[^@\s]+)@(?P<commit>[0-9a-f]{40})(?:/.*)?")
SHORT = 7  # a commit as git and the Hub show it


def source_label(source: str) -> str:
    """The repo at the short commit for a Hub file (its path is the asset's name); a URL as
    it is recorded (without a query: see shown)."""
    m = _HF.fullmatch(source)
    return f"hf://{m['repo']}@{m['commit'][:SHORT]}" if m else source


def shown(url: str) -> str:
    """A URL as plans, the lockfile and messages show it: without its query or fragment,
    where a signed URL keeps its signature."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))
