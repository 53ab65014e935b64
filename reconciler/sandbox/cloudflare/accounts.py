"""The Cloudflare accounts the sandbox serves: every other account id answers 403 with code
10000 "Authentication error", as the real API answers a valid token on an account it has no
rights to (api-notes.md), on every /accounts/{id}/... route.

`reconciler sandbox` serves the accounts given with `--account` (default the documented
DEFAULT_ACCOUNT_ID); `--sandbox` serves its default, the environment's CLOUDFLARE_ACCOUNT_ID
and the accounts the config names, added once the config is read (`add`), before any request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from reconciler.sandbox.common.defaults import ACCOUNT_ID_RE, DEFAULT_ACCOUNT_ID

SHAPE = "32 lowercase hex characters"


def checked(ids: Iterable[str]) -> tuple[str, ...]:
    """The account ids, each once, in the order given; ValueError naming those that are not
    Cloudflare account ids, or if there are none."""
    found = tuple(dict.fromkeys(ids))
    bad = [a for a in found if not isinstance(a, str) or not ACCOUNT_ID_RE.fullmatch(a)]
    if bad:
        raise ValueError(f"account ids are {SHAPE}: {', '.join(map(repr, bad))}")
    if not found:
        raise ValueError("the sandbox serves at least one account")
    return found


class Accounts:
    """A set of account ids that only grows; reads and `add` may come from any thread."""

    def __init__(self, ids: Iterable[str] = (DEFAULT_ACCOUNT_ID,)) -> None:
        self._ids = checked(ids)

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: Iterable[str]) -> None:
        """Serve these too (ValueError, serving none of them, if one is malformed)."""
        fresh = [a for a in checked((*self._ids, *ids)) if a not in self._ids]
        # One assignment of a new tuple: a request reading it sees the old or the new whole.
        self._ids = (*self._ids, *fresh)
