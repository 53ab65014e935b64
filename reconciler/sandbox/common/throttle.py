"""A slow link, for the `bandwidth=` fault: request and answer bodies carried at a set rate.

The request body is read from the socket in small pieces, each paced, so a client sending
faster than the rate finds the socket's buffers full and waits, as it would on a slow link;
the answer is written in pieces the same way. Pacing is by the bytes carried since the
first: after N bytes at R bytes/s, N/R seconds have gone by.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Sleep = Callable[[float], None]


class Pace:
    """Sleeps so that the bytes counted go at most `rate` bytes per second."""

    def __init__(self, rate: float, sleep: Sleep = time.sleep) -> None:
        self.rate = rate
        self.piece = max(1024, int(rate / 20))  # a twentieth of a second's worth
        self._sleep = sleep
        self._start: float | None = None
        self._carried = 0

    def carried(self, count: int) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        self._carried += count
        due = self._start + self._carried / self.rate
        if due > now:
            self._sleep(due - now)


class SlowInput:
    """wsgi.input, read at the pace's rate; reads return what was asked (or what is left)."""

    def __init__(self, stream: Any, pace: Pace) -> None:
        self._stream = stream
        self._pace = pace

    def read(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        got = 0
        while wanted < 0 or got < wanted:
            ask = self._pace.piece if wanted < 0 else min(self._pace.piece, wanted - got)
            data = self._stream.read(ask)
            if not data:
                break
            self._pace.carried(len(data))
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        line = self._stream.readline(size if size is not None else -1)
        self._pace.carried(len(line))
        return bytes(line)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


def slow_answer(body: Iterable[bytes], pace: Pace) -> Iterator[bytes]:
    """The answer's bytes, in paced pieces; closes the body as WSGI asks."""
    try:
        for chunk in body:
            for at in range(0, len(chunk), pace.piece):
                piece = chunk[at : at + pace.piece]
                pace.carried(len(piece))
                yield piece
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
