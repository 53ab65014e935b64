"""Logging to stderr at the verbosity asked for, with every known secret redacted.

Secrets are the values of the token variables in the environment. The filter replaces them in
the final message of every record, whoever logged it (httpx and httpcore included at -vv), so
a token cannot reach a log even through an exception's text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

SECRET_VARIABLES = ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CO_API_KEY")
_handler: logging.Handler | None = None


class Redact(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self._secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, ()
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def configure(verbosity: int, env: Mapping[str, str]) -> None:
    """0: warnings only; 1 (-v): what reconciler does; 2 (-vv): every HTTP exchange too."""
    global _handler
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Redact([env[v] for v in SECRET_VARIABLES if env.get(v)]))
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
