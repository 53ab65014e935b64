"""How a remote asset's source is shown: hf://acme/support-lora@3f2a91c, or its URL."""

from __future__ import annotations

import re

_HF = re.compile(r"hf://(?P<repo>[^@\s]+)@(?P<commit>[0-9a-f]{40})(?:/.*)?")
SHORT = 7  # a commit as git and the Hub show it


def source_label(source: str) -> str:
    """The repo at the short commit for a Hub file (its path is the asset's name); a URL as
    it is recorded (without a query: see url.shown)."""
    m = _HF.fullmatch(source)
    return f"hf://{m['repo']}@{m['commit'][:SHORT]}" if m else source
