"""Creating something exactly once over a network that can lose answers.

A create whose answer was lost (OutcomeUnknown) may have happened. Sending it again blindly
could make a duplicate, so we look first: names are unique in an account, so the name finds
what the lost create made. But the name alone proves nothing: someone else may have made a
finetune of that name meanwhile, and then ours was refused (the answer that was lost). What
the look finds is taken as ours only if it was created after our first send (and, where the
caller says how, has what was sent); otherwise the create was refused, which is a definite
answer (ProviderError), and nothing of theirs is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from reconciler.base.errors import OutcomeUnknown, ProviderError
from reconciler.plan import adoption

log = logging.getLogger("reconciler.providers")
T = TypeVar("T")

ATTEMPTS = 3


def create_once(
    what: str,
    send: Callable[[], T],
    find: Callable[[], T | None],
    not_ours: Callable[[T, str], list[str]] | None = None,
) -> T:
    """`not_ours(found, since)`: why what `find` found is not what was sent (none: it is);
    by default, only whether it was created before `since`, the moment of the first send."""
    since = adoption.now()
    unknown: OutcomeUnknown | None = None
    for _ in range(ATTEMPTS):
        try:
            return send()
        except OutcomeUnknown as exc:
            log.warning("%s; looking to see whether it was made", exc)
            found = find()
            if found is not None:
                reasons = (not_ours or _created_before)(found, since)
                if reasons:
                    raise ProviderError(
                        f"{what}: the answer was lost, and a finetune of that name is there "
                        f"now, but it is not the one sent ({'; '.join(reasons)}): the name is "
                        "taken, perhaps by someone else. Give this finetune another name; if "
                        "you know it is yours, `reconciler import` it"
                    ) from None
                return found
            unknown = exc
    raise OutcomeUnknown(
        f"{what}: the outcome was unknown {ATTEMPTS} times and it was not made ({unknown})"
    )


def _created_before(found: object, since: str) -> list[str]:
    created = getattr(found, "created_at", None)
    if not isinstance(created, str) or adoption.instant(created) is None:
        return []  # nothing to tell by: the name is all there is
    early = adoption.created_too_early(created, since)
    return [early] if early else []
