"""Did you mean: the choice one slip away from what was typed (`adaptor` -> `adapter`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio from which a choice counts as meant: `publik`/`public` is 0.83,
# `adaptor`/`adapter` 0.86, `token`/`version` 0.33
CUTOFF = 0.75
# long names that share a long prefix (`@cf/meta/llama-3-8b-instruct` and
# `@cf/meta/llama-3.2-11b-vision-instruct`, 0.82) need a slip, not a likeness: `-lroa` for
# `-lora` in a model name is 0.98
NEAR_IDENTICAL = 0.94


def closest(word: object, choices: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The choice closest to `word`, if close enough to be what was meant."""
    near = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=cutoff)
    return near[0] if near else None


def did_you_mean(
    word: object, choices: Iterable[str], quote: str = "'", cutoff: float = CUTOFF
) -> str:
    """` (did you mean 'adapter'?)`, or nothing when no choice is close."""
    near = closest(word, choices, cutoff)
    return f" (did you mean {quote}{near}{quote}?)" if near is not None else ""
