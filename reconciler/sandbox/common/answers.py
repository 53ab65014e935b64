"""Deterministic answers the emulated inference APIs share: the keywords of an input and the
stock sentences an answer is built from (see sandbox/cloudflare/inference.py for the rule)."""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_KEYWORDS = 6

# Skipped when picking keywords (compared lowercased). Words under 3 characters are skipped
# anyway.
_STOP_WORDS_TEXT = """
    about above after again all also and any are aren't because been before being below
    between both but can can't cannot could couldn't did didn't does doesn't doing don't down
    during each few for from further get gets got had hadn't has hasn't have haven't having
    her here hers herself him himself his how i'd i'll i'm i've into isn't it's its itself
    just let let's like make may might more most must mustn't myself need nor not now off
    once only other ought our ours ourselves out over own please same shall she should
    shouldn't some such tell than that that's the their theirs them themselves then there
    there's these they this those through too under until very want was wasn't were weren't
    what what's when where which while who whom why will with won't would wouldn't yes yet
    you you'd you'll you're you've your yours yourself yourselves
    hello hey thanks thank write explain describe show give
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

SENTENCES = (
    "Here is the short version, and I am happy to go deeper on any part of it.",
    "The usual first step is to check the details you already have.",
    "Most cases like this are settled in a few minutes.",
    "I would start with the simplest option and build from there.",
    "Let me know if you want a step-by-step walkthrough.",
    "There are a couple of ways to handle this, depending on what you need.",
    "If anything is still unclear, send me more details and I will follow up.",
    "A quick example usually makes this much easier to see.",
)

_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")


def keywords(text: str) -> list[str]:
    """The input's keywords, as the module docstring defines them."""
    seen: set[str] = set()
    found: list[str] = []
    for match in _WORD_RE.finditer(text):
        word = match.group()
        folded = word.lower().replace("\u2019", "'")
        if len(word) < 3 or folded in STOP_WORDS or folded in seen:
            continue
        seen.add(folded)
        found.append(word)
        if len(found) == MAX_KEYWORDS:
            break
    return found


def join(words: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
