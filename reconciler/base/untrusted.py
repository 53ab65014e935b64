"""Strings from outside (an API's answers, a lockfile, the environment) made safe to show.

A remote finetune's name or description, a model's answer or a catalogue entry can carry a
line break, a terminal escape (CSI, an OSC 52 clipboard write, an OSC 8 link, their 8-bit C1
forms) or a bidi control: printed as they are, they start a new line of a plan (a second
summary line in a pull-request comment), recolour or clear a terminal, write the clipboard,
hide a link, or reorder what a reviewer reads. Every view shows such characters as visible
escapes instead (`visible`, `quoted`, and `json_safe` for JSON); nothing else about the text
changes. The rule is one for every format: escape every character of the categories below,
and the few others that draw nothing; never rely on a terminal library's stripping (click
strips CSI off a terminal, not OSC, and nothing on one).
"""

from __future__ import annotations

import json
import re
import unicodedata

# control (C0, DEL, C1), format (bidi controls U+202A-202E and U+2066-2069, zero-width
# characters, tags), line and paragraph separators, and lone surrogates (which no terminal can
# print)
HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# letters and marks that draw nothing, so that two names that read the same differ: the
# combining grapheme joiner, the Hangul and Khmer fillers, the variation selectors supplement
# (U+FE00-FE0F stay: they pick an emoji's or a glyph's look, and emoji carry them)
INVISIBLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0\U000e0100-\U000e01ef]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def is_hidden(ch: str) -> bool:
    return unicodedata.category(ch) in HIDDEN or INVISIBLE.match(ch) is not None


def _plain(text: str) -> bool:
    """Nothing to escape: the common case (isprintable is stricter than HIDDEN)."""
    return text.isprintable() and INVISIBLE.search(text) is None


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control, format or separator character written as an escape
    (\\n, \\x1b, \\u202e): one line, shown as it is stored."""
    if _plain(text):
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
    if _plain(document):
        return document
    return "".join(ch if ch in "\n" or not is_hidden(ch) else _json_escape(ch) for ch in document)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a surrogate pair, as JSON spells characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
