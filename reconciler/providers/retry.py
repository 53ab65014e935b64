"""When to try a request again, and how long to wait: exponential backoff with full jitter.

A request that never left (connection refused) or that the server refused without acting on
it (429) is always safe to repeat. A request whose outcome is unknown (a timeout or a reset
after it was sent, a 5xx) is repeated only if it is idempotent; otherwise the caller is told,
so that it can look before it leaps (see OutcomeUnknown).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.base.errors import EnvError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS = 100
MAX_BACKOFF = 300.0


def _number(variable: str, env: Mapping[str, str], default: float, *, whole: bool) -> float:
    text = env.get(variable, "").strip()
    if not text:
        return default
    low, high = (1, MAX_ATTEMPTS) if whole else (0.0, MAX_BACKOFF)
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = None
    if value is None or not (low <= value <= high):  # NaN fails both comparisons
        what = "a whole number of attempts" if whole else "a number of seconds"
        raise EnvError(f"{variable} must be {what} from {low:g} to {high:g}")
    return value


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # in all, the first included
    base_delay: float = 0.5  # seconds; doubles each attempt
    max_delay: float = 30.0
    max_retry_after: float = 300.0  # Cloudflare's rate limit blocks for up to 5 minutes

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RetryPolicy:
        """RECONCILER_HTTP_ATTEMPTS and RECONCILER_HTTP_BACKOFF (base seconds) tune it. A value
        that is not one is refused by name, rather than quietly replaced by the default."""
        policy = cls()
        attempts = _number("RECONCILER_HTTP_ATTEMPTS", env, policy.attempts, whole=True)
        base = _number("RECONCILER_HTTP_BACKOFF", env, policy.base_delay, whole=False)
        return cls(attempts=int(attempts), base_delay=base)

    def delay(self, attempt: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:
            try:
                return min(max(0.0, float(retry_after)), self.max_retry_after)
            except ValueError:
                pass  # an HTTP date: fall back to backoff rather than parse calendars
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return rng.uniform(0, ceiling)  # full jitter: clients that failed together spread out
