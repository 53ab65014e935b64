"""Fault injection: a WSGI middleware that makes the sandbox fail the way networks and APIs do.

What to inject is a FaultSpec (fault_spec.py, which documents the textual grammar). Per
request, in this order:

1. Rate limit (when the spec sets one), on the paths of mounts that say `rate_limited`
   (common/mount.py; Cloudflare's): each token gets `requests` calls per `window`, counted
   from its first call; past that every call is answered 429 with `Retry-After`, in that
   API's shape (Cloudflare: code 971), until the window ends, as Cloudflare does.
2. Every rule whose route matches rolls its own die: the n-th request a rule sees is hit iff
   Random(f"{seed}:{rule}:{n}") < rate. Each rule's sequence depends only on the seed and
   its own count, so the same seed and the same requests give the same faults.
3. The latencies of all hit rules are slept, in the handler thread; the lowest `bandwidth` of
   the hit rules paces the request's body and the answer's (throttle.py); then the first hit rule
   with status/reset/drop acts: an error answer in the shape of the API that owns the path
   (its mount's `fault_body`; the sandbox's neutral shape where no mount owns it), a TCP reset
   once the request is read but before the API sees it, or the request handled (and stored)
   with its answer dropped.

Resets and drops work by raising a ConnectionError subclass, which werkzeug's server takes as
"connection gone" and so writes nothing; server.py closes the socket (with SO_LINGER 0 for a
reset, so the peer gets RST rather than FIN). Every injected fault is appended to `log`.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.sandbox.common.auth import bearer
from reconciler.sandbox.common.clock import Clock, SystemClock
from reconciler.sandbox.common.fault_spec import FaultRule, FaultSpec, RateLimit, Route
from reconciler.sandbox.common.mount import Mounted, fault_body_of, is_rate_limited, owner
from reconciler.sandbox.common.responses import send_json
from reconciler.sandbox.common.throttle import Pace, Sleep, SlowInput, slow_answer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DropConnection",
    "FaultInjector",
    "FaultRule",
    "FaultSpec",
    "InjectedFault",
    "RateLimit",
    "ResetConnection",
    "Route",
]

DEFAULT_RETRY_AFTER = 1


class DropConnection(ConnectionError):
    """Close the connection without an answer (FIN)."""


class ResetConnection(ConnectionError):
    """Abort the connection (RST)."""


@dataclass(frozen=True)
class InjectedFault:
    method: str
    path: str
    kind: str  # "status", "latency", "bandwidth", "reset", "drop" or "rate_limit"
    status: int | None = None
    latency: float = 0.0
    rule: int | None = None  # index in spec.rules; None for the rate limit
    bandwidth: float | None = None  # bytes per second


class RateLimiter:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, now: float) -> int | None:
        """None to let the call through, else the seconds to wait (Retry-After)."""
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= self.limit.window:
                start, count = now, 0
            self._windows[key] = (start, count + 1)
            if count + 1 <= self.limit.requests:
                return None
            return max(1, math.ceil(start + self.limit.window - now))


def _caller(environ: WSGIEnvironment) -> str:
    """Who the rate limit counts against: the token (hashed, never kept), else anonymous."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    token = bearer(header) if header else None
    credential = token or str(environ.get("HTTP_X_AUTH_KEY", "")) or "anonymous"
    return hashlib.sha256(credential.encode()).hexdigest()


def _drain(environ: WSGIEnvironment) -> None:
    """Read (and discard) the request body before a reset.

    A client still sending when the RST lands takes the error on its write, and its read then
    sees a plain EOF; reading the whole request first makes the reset land on the read,
    where every client reports it as a reset (httpx: ReadError), every time.
    """
    from werkzeug.wsgi import get_input_stream

    stream = get_input_stream(environ, max_content_length=None)
    while stream.read(1 << 16):
        pass


class FaultInjector:
    """Wraps the sandbox's app; `mounts` are the APIs it serves, whose shapes and rate-limit
    choice the faults follow (common/mount.py)."""

    def __init__(
        self,
        app: WSGIApplication,
        spec: FaultSpec,
        log: list[InjectedFault] | None = None,
        clock: Clock | None = None,
        *,
        mounts: Sequence[Mounted] = (),
        sleep: Sleep = time.sleep,
    ) -> None:
        self.app = app
        self._sleep = sleep
        self.mounts = tuple(mounts)
        self.spec = spec
        self.log: list[InjectedFault] = [] if log is None else log
        self.clock = clock if clock is not None else SystemClock()
        self.limiter = None if spec.rate_limit is None else RateLimiter(spec.rate_limit)
        self._counts = [0] * len(spec.rules)
        self._lock = threading.Lock()

    def _record(self, fault: InjectedFault) -> None:
        with self._lock:
            self.log.append(fault)

    def _hit(self, index: int, rule: FaultRule) -> bool:
        with self._lock:
            seen = self._counts[index]
            self._counts[index] += 1
        return random.Random(f"{self.spec.seed}:{index}:{seen}").random() < rule.rate

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        mounted = owner(self.mounts, path)
        if self.limiter is not None and is_rate_limited(mounted):
            wait = self.limiter.check(_caller(environ), self.clock.now())
            if wait is not None:
                self._record(InjectedFault(method, path, "rate_limit", status=429))
                body = fault_body_of(mounted, 429)
                return send_json(start_response, 429, body, [("Retry-After", str(wait))])
        hits = [
            (index, rule)
            for index, rule in enumerate(self.spec.rules)
            if rule.route.matches(method, path) and self._hit(index, rule)
        ]
        for index, rule in hits:
            if rule.latency:
                self._record(
                    InjectedFault(method, path, "latency", latency=rule.latency, rule=index)
                )
                self._sleep(rule.latency)
        pace = self._slow_link(environ, method, path, hits)
        ending = [(i, r) for i, r in hits if r.kind is not None]
        if not ending:
            answer = self.app(environ, start_response)
            return answer if pace is None else slow_answer(answer, pace)
        index, rule = ending[0]
        if rule.reset:
            _drain(environ)
            self._record(InjectedFault(method, path, "reset", rule=index))
            raise ResetConnection(f"sandbox fault: reset {method} {path}")
        if rule.drop:
            self._handle_and_discard(environ)
            self._record(InjectedFault(method, path, "drop", rule=index))
            raise DropConnection(f"sandbox fault: dropped the answer to {method} {path}")
        assert rule.status is not None
        self._record(InjectedFault(method, path, "status", status=rule.status, rule=index))
        retry_after = rule.retry_after
        if retry_after is None and rule.status == 429:
            retry_after = DEFAULT_RETRY_AFTER
        headers = [] if retry_after is None else [("Retry-After", str(retry_after))]
        body = fault_body_of(mounted, rule.status)
        return send_json(start_response, rule.status, body, headers)

    def _slow_link(
        self,
        environ: WSGIEnvironment,
        method: str,
        path: str,
        hits: list[tuple[int, FaultRule]],
    ) -> Pace | None:
        """The slowest bandwidth of the hit rules, put on the request's body; None if none."""
        slow = [(r.bandwidth, i) for i, r in hits if r.bandwidth is not None]
        if not slow:
            return None
        rate, index = min(slow)
        self._record(InjectedFault(method, path, "bandwidth", rule=index, bandwidth=rate))
        pace = Pace(rate, self._sleep)
        environ["wsgi.input"] = SlowInput(environ["wsgi.input"], pace)
        return pace

    def _handle_and_discard(self, environ: WSGIEnvironment) -> None:
        """Run the request through the API for its effect; the answer goes nowhere."""

        def ignore(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
            return None

        answer = self.app(environ, ignore)  # type: ignore[arg-type]
        try:
            for _ in answer:
                pass
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
