"""The tokens the sandbox accepts, shared by both emulated APIs."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from reconciler.sandbox.common.defaults import TOKEN_RE


def token_id(token: str) -> str:
    """A stable public id for a token (what /user/tokens/verify reports), not reversible."""
    return hashlib.sha256(b"reconciler-sandbox-token-id:" + token.encode()).hexdigest()[:32]


def validate_tokens(tokens: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tokens, str):
        raise TypeError("tokens must be a sequence of strings, not one string")
    if not tokens:
        raise ValueError("the sandbox needs at least one accepted token")
    for token in tokens:
        if not TOKEN_RE.fullmatch(token):
            # Said without the token itself: it is a credential.
            raise ValueError("sandbox tokens may only use letters, digits, '-' and '_'")
    return tuple(tokens)


class Tokens:
    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [(t.encode(), token_id(t)) for t in validate_tokens(tokens)]

    def known(self, candidate: str) -> str | None:
        """The id of the matching token; every token is compared, in constant time."""
        given = candidate.encode()
        found = None
        for token, ident in self._tokens:
            if hmac.compare_digest(given, token):
                found = ident
        return found


def bearer(header: str) -> str | None:
    """The token in `Bearer <token>` (scheme in any case), or None if malformed."""
    parts = header.split(" ")
    if len(parts) != 2 or parts[0].lower() != "bearer" or not TOKEN_RE.fullmatch(parts[1]):
        return None
    return parts[1]
