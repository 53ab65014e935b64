"""Where a provider is and its token: resolved from the environment, never from the config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.base.credentials import token_problem, url_problem
from reconciler.base.errors import CredentialsError

log = logging.getLogger("reconciler.providers")


@dataclass(frozen=True)
class Endpoint:
    """How to reach one provider: resolved from the environment, never from the config file."""

    base_url: str
    token: str
    label: str  # "sandbox" or the base URL; what the lockfile records
    verify_tls: bool = True

    def __repr__(self) -> str:  # the token must not reach a log or traceback through repr
        return f"Endpoint(base_url={self.base_url!r}, token='***', label={self.label!r})"


INSECURE_ENV = "RECONCILER_INSECURE_TLS"


def endpoint_from_env(
    env: Mapping[str, str],
    label: str | None,
    *,
    token_variable: str,
    url_variable: str,
    default_url: str,
    missing: str,
) -> Endpoint:
    """Where a provider is and its token, from the environment only (never the config).
    `missing` says how to get a token when there is none. A malformed token or URL is refused
    here, before any request, by the variable's name: its value is never shown."""
    token = env.get(token_variable, "")
    if not token:
        raise CredentialsError(
            f"{token_variable} is not set: {missing}, or try reconciler with --sandbox"
        )
    problem = token_problem(token_variable, token)
    base_url = (env.get(url_variable) or default_url).rstrip("/")
    problem = problem or url_problem(url_variable, base_url, token_variable)
    if problem:
        raise CredentialsError(problem)
    verify = verify_tls(base_url, env)
    if not verify:
        log.warning("TLS verification is off for %s (named in %s)", base_url, INSECURE_ENV)
    return Endpoint(base_url=base_url, token=token, label=label or base_url, verify_tls=verify)


def verify_tls(base_url: str, env: Mapping[str, str]) -> bool:
    """TLS verification stays on unless this very endpoint is named in RECONCILER_INSECURE_TLS
    (comma-separated base URLs): for a lab proxy with a self-signed certificate, never a blanket
    switch."""
    named = {u.strip().rstrip("/") for u in env.get(INSECURE_ENV, "").split(",") if u.strip()}
    return base_url.rstrip("/") not in named
