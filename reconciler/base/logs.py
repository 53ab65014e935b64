"""Logging to stderr at the verbosity asked for, with every known secret redacted.

0: warnings only (a retry is one: said on the first failure, so a slow endpoint is never
silent); 1 (-v): one line per apply step and per HTTP request (method, path, status, time);
2 (-vv): reconciler's own detail too (sizes, request ids, cache decisions). The HTTP libraries'
debug output (httpcore's socket events) is never shown: it is noise, and it is where a
header could leak.

Secrets are what credentials.py says they are: the values of the token variables and of any
variable named like a secret, and credentials inside an endpoint URL. The filter replaces them
in the final message of every record, whoever logged it, so a token cannot reach a log even
through an exception's text; and it shows control and bidi characters as escapes, so that a
remote string in a log line cannot act on the terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from reconciler.base.credentials import MIN_REDACTED, redact, secret_values
from reconciler.base.untrusted import visible

_handler: logging.Handler | None = None


class Redact(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted(
            (s for s in secrets if len(s) >= MIN_REDACTED), key=len, reverse=True
        )

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

    def redact(self, text: str) -> str:
        return visible(redact(text, self._secrets), keep_newlines=True)


class _Stderr:
    """sys.stderr as it is when a line is written, not when logging was set up: a live
    progress display replaces it meanwhile so that log lines print above the bars."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _Format(logging.Formatter):
    """`Warning: ...` as the CLI's own warnings read; below that, the room it came from
    (`http: GET /accounts/... -> 200 in 12 ms`)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"Error: {message}"
        if record.levelno >= logging.WARNING:
            return f"Warning: {message}"
        room = record.name.removeprefix("reconciler.").removeprefix("reconciler")
        return f"{room or 'reconciler'}: {message}"


def configure(verbosity: int, env: Mapping[str, str]) -> None:
    """0: warnings only; 1 (-v): steps and requests; 2 (-vv): reconciler's debug detail too."""
    global _handler
    handler = logging.StreamHandler(_Stderr())
    handler.addFilter(Redact(secret_values(env)))
    handler.setFormatter(_Format())
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    for name in ("reconciler", "httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _handler is not None:
            logger.removeHandler(_handler)
        logger.addHandler(handler)
        logger.propagate = False
        # httpx logs every request at INFO and httpcore its socket events at DEBUG: ours say
        # the same in one line, so theirs stay quiet at every verbosity
        logger.setLevel(level if name == "reconciler" else logging.WARNING)
    _handler = handler


def verbosity() -> int:
    """What configure() was last asked for, from the level it set (0 if never called)."""
    level = logging.getLogger("reconciler").level
    return 2 if level and level <= logging.DEBUG else 1 if level == logging.INFO else 0
