"""Time for the sandbox: the real clock, or one a test moves by hand, and how fast work runs.

Simulated work (dataset validation, training) is never driven by background threads: the
store records when it started, and every read derives the state from the time elapsed since.
That keeps state across restarts and makes tests deterministic. `speed` compresses that work:
at speed 60 a job that would take a minute takes a second. Only simulated work is scaled;
timestamps stay real (a 10-minute training run at speed 600 is stamped one second apart).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    @property
    def speed(self) -> float:
        """How many simulated seconds pass per real second."""
        ...

    def now(self) -> float:
        """Real time, in seconds since the epoch."""
        ...


# Sandbox choice: a day of simulated work in under a tenth of a second is fast enough, and the
# bound keeps elapsed * speed finite (at 1e308 it overflowed, and every read of a run failed).
MAX_SPEED = 1e6
SPEED_RULE = (
    f"must be a positive number, at most {MAX_SPEED:,.0f}"
    " (how many times faster than real time simulated work runs)"
)


def _checked_speed(speed: float) -> float:
    if isinstance(speed, bool) or not math.isfinite(speed) or not 0 < speed <= MAX_SPEED:
        raise ValueError(f"clock speed {SPEED_RULE}, got {speed!r}")
    return float(speed)


def parse_speed(text: str) -> float:
    """A clock speed as a person writes it (`600`, `2.5`, `1e3`); ValueError, worded
    "must be ..., got '<text>'" for the caller to prefix with the option or variable, for
    anything else (words, nan, inf, zero, negatives, past MAX_SPEED)."""
    try:
        return _checked_speed(float(text.strip()))
    except ValueError:
        raise ValueError(f"{SPEED_RULE}, got {text!r}") from None


class SystemClock:
    def __init__(self, speed: float = 1.0) -> None:
        self._speed = _checked_speed(speed)

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to: for tests that step through a lifecycle."""

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        self._speed = _checked_speed(speed)
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move forward by this many real seconds (simulated: seconds * speed)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds


def iso(epoch: float) -> str:
    """ISO 8601 in UTC with microseconds and Z, as Cohere writes its timestamps."""
    stamp = datetime.fromtimestamp(epoch, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    """The epoch seconds of an ISO 8601 timestamp; naive ones are taken as UTC."""
    stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()
