"""What faults to inject, written down: the FaultSpec and its compact textual grammar.

Compact form (for `reconciler sandbox --faults SPEC`)::

    SPEC    := RULE ( "|" RULE )*          rules are also separated by newlines
    RULE    := SETTING ( ";" SETTING )*    whitespace around tokens is ignored
    SETTING := KEY "=" VALUE | "reset" | "drop"

    seed=INT              seed of the dice (default 0): same seed, same faults
    rate_limit=N/DUR      the per-token rate limit of Cloudflare routes, e.g. 1200/5m;
                          `rate_limit=cloudflare` is the published 1200/5m
    route=[METHOD] PATH   which requests a rule applies to (default: all). METHOD is an
                          HTTP method or `*` (default `*`); in PATH `*` matches within one
                          segment, `**` across segments: `POST /client/v4/accounts/*/ai/finetunes`.
                          PATH is matched decoded, so a model name in /ai/run/ has its
                          slashes: `POST /client/v4/accounts/*/ai/run/**`
    rate=P                chance a matching request is hit, 0..1 or a percentage (default 1)
    status=CODE           answer CODE (408, 409, 429, 500, 502, 503, 504) in the API's own
                          error shape; 429 carries Retry-After
    retry_after=SECONDS   the Retry-After of that answer (default 1 for 429, none otherwise)
    latency=DUR           delay the request, e.g. 250ms, 1.5s (combines with the others)
    bandwidth=RATE        carry the request's body and the answer's at most RATE, e.g.
                          15MB/s, 512KiB/s (B, KB, MB, GB are powers of 1000; KiB, MiB,
                          GiB of 1024): uploads and downloads take the time they would on
                          a slow link, so progress can be watched (combines with the others)
    reset                 cut the TCP connection (RST) before the API sees the request
    drop                  let the API handle the request, so its change is stored, then
                          close the connection without answering ("commit then drop")

`seed` and `rate_limit` apply to the whole spec and may sit in any rule (once each); every
other group of settings is one rule and needs a fault (status, latency, bandwidth, reset or
drop), at most one of status/reset/drop. DUR is a number with `ms`, `s` or `m` (bare: seconds).
Example::

    seed=7; rate=0.2; status=503; route=POST /client/v4/accounts/*/ai/finetunes
    | route=/v1/**; rate=10%; latency=300ms | rate_limit=cloudflare

The same as a mapping, in JSON or YAML (text starting with `{` is JSON; text whose first
line starts `key:`, `- ` or `---` is YAML; `@path` in `from_option` reads a file)::

    {"seed": 7, "rate_limit": "1200/5m",
     "rules": [{"route": "POST /client/v4/accounts/*/ai/finetunes", "rate": 0.2,
                "status": 503},
               {"route": "/v1/**", "rate": 0.1, "latency": "300ms"},
               {"route": "POST /v1/datasets", "drop": true}]}

Every mistake raises ValueError saying what is wrong and where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.sandbox.common.bodies import MAX_JSON_DEPTH, BodyRefused, parse_json, too_deep
from reconciler.sandbox.common.files import FileRefused, read_regular

FAULT_STATUSES = (408, 409, 429, 500, 502, 503, 504)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Cloudflare's published API rate limit: 1,200 requests per five minutes per token.
CLOUDFLARE_RATE_LIMIT = (1200, 300.0)
_GLOBAL_KEYS = ("seed", "rate_limit")
_RULE_KEYS = ("route", "rate", "status", "retry_after", "latency", "bandwidth", "reset", "drop")
# `key:` / `- ` / `---` at the start is YAML; compact settings are `key=...`.
_YAML_START = re.compile(r"\s*(---|-\s|[A-Za-z_][\w-]*\s*:)")
# Sandbox choice: the longest latency or rate-limit window a spec may ask for. Longer than any
# client's timeout; past it, sleep() and the window's arithmetic overflow.
MAX_DURATION = 86400.0
# Sandbox choice: a spec is a few lines; a file of more than this is not one.
MAX_SPEC_BYTES = 1 << 20
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?")
_RATE_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMG]i?B|B)(?:/s)?", re.IGNORECASE)
_RATE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_RATE_UNITS |= {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
# Sandbox choice: the slowest link a spec may ask for (1 KB/s: a 1 MiB upload takes 17 minutes).
MIN_BANDWIDTH = 1000.0


def _yaml(text: str) -> Any:
    import yaml

    if too_deep(text, MAX_JSON_DEPTH):  # flow style: [[[...]]] would exhaust the parser
        raise _fail(f"invalid YAML: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(f"invalid YAML: {exc}") from None
    except RecursionError:  # block style nests by indentation, which too_deep cannot see
        raise _fail("invalid YAML: nested too deeply") from None


def _fail(message: str) -> ValueError:
    return ValueError(f"fault spec: {message}")


def parse_duration(text: str, key: str) -> float:
    match = _DURATION_RE.fullmatch(str(text).strip())
    if not match:
        raise _fail(f"{key} must be a duration like 250ms, 1.5s or 2m, got {text!r}")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    seconds = float(match.group(1)) * scale
    if not seconds <= MAX_DURATION:  # also inf: 400 digits are a float, and sleep(inf) fails
        raise _fail(f"{key} must be at most 1 day ({MAX_DURATION:g} s), got {text!r}")
    return seconds


def parse_bandwidth(text: str) -> float:
    """Bytes per second from `15MB/s`, `512KiB/s`, `1GB`."""
    match = _RATE_RE.fullmatch(str(text).strip())
    if not match:
        raise _fail(f"bandwidth must be a rate like 15MB/s or 512KiB/s, got {text!r}")
    rate = float(match.group(1)) * _RATE_UNITS[match.group(2).lower()]
    if not MIN_BANDWIDTH <= rate < float("inf"):
        raise _fail(f"bandwidth must be a finite rate of at least 1KB/s, got {text!r}")
    return rate


@dataclass(frozen=True)
class Route:
    method: str  # "*" for any
    path: str  # the glob as written

    @classmethod
    def parse(cls, text: str) -> Route:
        words = str(text).split()
        if len(words) == 1:
            words = ["*", *words]
        if len(words) != 2:
            raise _fail(f"route must be '[METHOD] PATH', got {text!r}")
        method, path = words[0].upper(), words[1]
        if method != "*" and method not in METHODS:
            raise _fail(f"unknown method {words[0]!r} in route {text!r}")
        if not path.startswith("/"):
            raise _fail(f"route path must start with '/', got {path!r}")
        return cls(method, path)

    @property
    def regex(self) -> re.Pattern[str]:
        parts = re.split(r"(\*\*|\*)", self.path)
        pattern = "".join(
            ".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts
        )
        return re.compile(pattern)

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.regex.fullmatch(path) is not None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ANY_ROUTE = Route("*", "/**")


@dataclass(frozen=True)
class FaultRule:
    route: Route = ANY_ROUTE
    rate: float = 1.0
    status: int | None = None
    retry_after: int | None = None
    latency: float = 0.0
    reset: bool = False
    drop: bool = False
    bandwidth: float | None = None  # bytes per second, both ways

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise _fail(f"rate must be between 0 and 1, got {self.rate:g}")
        if self.status is not None and self.status not in FAULT_STATUSES:
            allowed = ", ".join(map(str, FAULT_STATUSES))
            raise _fail(f"status must be one of {allowed}, got {self.status}")
        if self.latency < 0:
            raise _fail("latency cannot be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise _fail("retry_after cannot be negative")
        terminal = [k for k in ("status", "reset", "drop") if getattr(self, k) not in (None, False)]
        if len(terminal) > 1:
            raise _fail(f"a rule can have only one of status, reset, drop; got {terminal}")
        if not terminal and not self.latency and self.bandwidth is None:
            raise _fail(
                f"rule for {self.route} has no fault: add status=, latency=, bandwidth=, reset "
                "or drop"
            )

    @property
    def kind(self) -> str | None:
        """The fault that ends the request, if any: "status", "reset" or "drop"."""
        if self.status is not None:
            return "status"
        return "reset" if self.reset else "drop" if self.drop else None


@dataclass(frozen=True)
class RateLimit:
    requests: int
    window: float  # seconds

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window <= 0:
            raise _fail("rate_limit needs at least 1 request per a positive window")

    @classmethod
    def cloudflare(cls) -> RateLimit:
        return cls(*CLOUDFLARE_RATE_LIMIT)

    @classmethod
    def parse(cls, value: Any) -> RateLimit:
        if isinstance(value, dict):
            unknown = set(value) - {"requests", "window"}
            if unknown or "requests" not in value:
                raise _fail("rate_limit must be {requests: N, window: DURATION}")
            window = parse_duration(str(value.get("window", 300)), "rate_limit window")
            return cls(_integer(value["requests"], "rate_limit requests"), window)
        text = str(value).strip()
        if text.lower() == "cloudflare":
            return cls.cloudflare()
        count, slash, window_text = text.partition("/")
        if not slash:
            raise _fail(f"rate_limit must be N/DURATION (e.g. 1200/5m) or cloudflare, got {text!r}")
        return cls(
            _integer(count, "rate_limit requests"), parse_duration(window_text, "rate_limit window")
        )


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise _fail(f"{key} must be an integer, got {value!r}")
    try:
        return int(str(value).strip())
    except ValueError:
        raise _fail(f"{key} must be an integer, got {value!r}") from None


def _rate(value: Any) -> float:
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise _fail(
            f"rate must be a number between 0 and 1 or a percentage, got {text!r}"
        ) from None


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", ""):
        return True
    if text in ("false", "no", "0"):
        return False
    raise _fail(f"{key} is a flag: write '{key}' or '{key}=true', got {value!r}")


def _rule(settings: dict[str, Any]) -> FaultRule:
    status = settings.get("status")
    retry_after = settings.get("retry_after")
    return FaultRule(
        route=Route.parse(settings["route"]) if "route" in settings else ANY_ROUTE,
        rate=_rate(settings["rate"]) if "rate" in settings else 1.0,
        status=None if status is None else _integer(status, "status"),
        retry_after=None if retry_after is None else _integer(retry_after, "retry_after"),
        latency=parse_duration(str(settings["latency"]), "latency")
        if "latency" in settings
        else 0.0,
        reset=_flag(settings.get("reset", False), "reset"),
        drop=_flag(settings.get("drop", False), "drop"),
        bandwidth=parse_bandwidth(settings["bandwidth"]) if "bandwidth" in settings else None,
    )


@dataclass(frozen=True)
class FaultSpec:
    seed: int = 0
    rules: tuple[FaultRule, ...] = ()
    rate_limit: RateLimit | None = None
    source: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """A spec from the compact form, JSON or YAML (see the module docstring)."""
        stripped = text.strip()
        if not stripped:
            raise _fail("empty spec")
        first_line = stripped.splitlines()[0]
        if stripped.startswith("{"):
            try:
                data = parse_json(stripped)
            except BodyRefused as exc:
                raise _fail(f"invalid JSON: {exc}") from None
            return cls.from_mapping(data, source=text)
        if _YAML_START.match(first_line):
            return cls.from_mapping(_yaml(stripped), source=text)
        return cls._from_compact(stripped)

    @classmethod
    def from_file(cls, path: Path) -> FaultSpec:
        """The spec in a regular file of at most MAX_SPEC_BYTES (never a FIFO or a device)."""
        try:
            data = read_regular(Path(path), MAX_SPEC_BYTES)
        except OSError as exc:
            raise _fail(f"cannot read {path}: {exc.strerror or exc}") from None
        except FileRefused as exc:
            raise _fail(f"cannot read {path}: {exc}") from None
        try:
            return cls.parse(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise _fail(f"cannot read {path}: not UTF-8 text") from None

    @classmethod
    def from_option(cls, value: str) -> FaultSpec:
        """A --faults value: `@path` names a file, anything else is a spec."""
        return cls.from_file(Path(value[1:])) if value.startswith("@") else cls.parse(value)

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "") -> FaultSpec:
        if not isinstance(data, dict):
            raise _fail("a JSON or YAML spec must be a mapping with seed, rate_limit, rules")
        unknown = sorted(set(data) - {"seed", "rate_limit", "rules"})
        if unknown:
            raise _fail(f"unknown key {unknown[0]!r} (known: seed, rate_limit, rules)")
        rules = data.get("rules") or []
        if not isinstance(rules, list):
            raise _fail("rules must be a list")
        parsed = []
        for number, rule in enumerate(rules, 1):
            if not isinstance(rule, dict):
                raise _fail(f"rule {number} must be a mapping")
            bad = sorted(set(rule) - set(_RULE_KEYS))
            if bad:
                raise _fail(
                    f"unknown key {bad[0]!r} in rule {number} (known: {', '.join(_RULE_KEYS)})"
                )
            parsed.append(_rule(rule))
        limit = data.get("rate_limit")
        return cls(
            seed=_integer(data.get("seed", 0), "seed"),
            rules=tuple(parsed),
            rate_limit=None if limit is None else RateLimit.parse(limit),
            source=source,
        )

    @classmethod
    def _from_compact(cls, text: str) -> FaultSpec:
        found: dict[str, Any] = {}
        rules = []
        for group in re.split(r"[|\n]", text):
            settings: dict[str, str] = {}
            for item in filter(None, (s.strip() for s in group.split(";"))):
                key, equals, value = item.partition("=")
                key = key.strip().lower()
                if key not in _GLOBAL_KEYS + _RULE_KEYS:
                    known = ", ".join(_GLOBAL_KEYS + _RULE_KEYS)
                    raise _fail(f"unknown key {key!r} in {item!r} (known: {known})")
                if not equals and key not in ("reset", "drop"):
                    raise _fail(f"{key} needs a value: {key}=...")
                target = found if key in _GLOBAL_KEYS else settings
                if key in target:
                    raise _fail(f"{key} given twice")
                target[key] = value.strip()
            if settings:
                rules.append(settings)
        return cls.from_mapping({**found, "rules": rules}, source=text)

    def describe(self) -> str:
        parts = [f"seed {self.seed}", f"{len(self.rules)} rule(s)"]
        if self.rate_limit is not None:
            parts.append(
                f"rate limit {self.rate_limit.requests}/{self.rate_limit.window:g}s per token"
            )
        return ", ".join(parts)
