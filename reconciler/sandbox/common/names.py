"""The one check for names a client gives the sandbox to keep (a finetune's, a dataset's, a
model's, a file's in a Hub repo): no control characters.

Sandbox choice: no public source says what Cloudflare, Cohere or the Hub answer for a name
holding NUL, a line break or an escape sequence. A name is a label shown in lists, consoles
and terminals, so the sandbox refuses those characters at create, each API in its own error
shape, and never stores one: a client is never shown a name it could not have made for real.
Refused: the Unicode category Cc (C0 controls with TAB, CR and LF, DEL, the C1 controls) and
lone surrogates (Cs), which are no text at all. Everything else is taken, letters of any
script and Unicode format characters (bidi controls) included: a client must show those
escaped, and a test of that needs the sandbox to keep them.
"""

from __future__ import annotations

import unicodedata

REFUSED_CATEGORIES = ("Cc", "Cs")


def control_character(name: str) -> str | None:
    """The first refused character of `name`, written U+XXXX, or None if there is none."""
    for ch in name:
        if unicodedata.category(ch) in REFUSED_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def name_problem(name: str, what: str) -> str | None:
    """Why `name` cannot be kept, worded "<what> must not ...", or None if it can."""
    found = control_character(name)
    if found is None:
        return None
    return f"{what} must not contain control characters (found {found})"
