"""Strings from outside (an API's answers, a lockfile, the environment) made safe to show.

A remote finetune's name or description can carry a line break, an ANSI escape or a bidi
control: printed as they are, they start a new line of a plan (a second summary line in a
pull-request comment), recolour a terminal or reorder what a reviewer reads. Every view shows
such characters as visible escapes instead; nothing else about the text changes.
"""

from __future__ import annotations

import json
import unicodedata

# control (C0, DEL, C1), format (bidi controls, zero-width characters), line and paragraph
# separators, and lone surrogates (which no terminal can print)
HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def is_hidden(ch: str) -> bool:
    return unicodedata.category(ch) in HIDDEN


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control, format or separator character written as an escape
    (\\n, \\x1b, \\u202e): one line, shown as it is stored."""
    if text.isprintable():  # the common case: nothing to do (isprintable is stricter)
        return text
    return "".join(
        ch if (keep_newlines and ch == "\n") or not is_hidden(ch) else _escape(ch) for ch in text
    )


def quoted(text: str) -> str:
    """`text` in double quotes, JSON-escaped and made visible: a value shown in a plan."""
    return visible(json.dumps(text, ensure_ascii=False))


def json_safe(document: str) -> str:
    """A JSON document with hidden characters inside its strings written as \\u escapes:
    the same data for a parser, nothing a terminal acts on. (Outside strings a JSON document
    holds only whitespace, which json.dumps writes as plain spaces and newlines.)"""
    if document.isprintable():
        return document
    return "".join(ch if ch in "\n" or not is_hidden(ch) else _json_escape(ch) for ch in document)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a surrogate pair, as JSON spells characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
