"""Creating something exactly once over a network that can lose answers.

A create whose answer was lost (OutcomeUnknown) may have happened. Sending it again blindly
could make a duplicate, so we look first: names are unique in an account, so the name finds
what the lost create made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from ..errors import OutcomeUnknown, ProviderError

log = logging.getLogger("reconciler.providers")
T = TypeVar("T")

ATTEMPTS = 3


def create_once(what: str, send: Callable[[], T], find: Callable[[], T | None]) -> T:
    unknown: OutcomeUnknown | None = None
    for _ in range(ATTEMPTS):
        try:
            return send()
        except OutcomeUnknown as exc:
            log.warning("%s; looking to see whether it was made", exc)
            found = find()
            if found is not None:
                return found
            unknown = exc
    raise ProviderError(
        f"{what}: the outcome was unknown {ATTEMPTS} times and it was not made ({unknown})"
    )
