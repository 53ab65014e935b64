"""Logging to stderr at the verbosity asked for, with every known secret redacted.

Secrets are what credentials.py says they are: the values of the token variables and of any
variable named like a secret, and credentials inside an endpoint URL. The filter replaces them
in the final message of every record, whoever logged it (httpx and httpcore included at -vv),
so a token cannot reach a log even through an exception's text; and it shows control and bidi
characters as escapes, so that a remote string in a log line cannot act on the terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from .credentials import MIN_REDACTED, redact, secret_values
from .untrusted import visible

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


def configure(verbosity: int, env: Mapping[str, str]) -> None:
    """0: warnings only; 1 (-v): what reconciler does; 2 (-vv): every HTTP exchange too."""
    global _handler
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Redact(secret_values(env)))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    for name in ("reconciler", "httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _handler is not None:
            logger.removeHandler(_handler)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(level if name == "reconciler" or verbosity >= 2 else logging.WARNING)
    _handler = handler
