"""Provider name -> how to build it and what it needs; a plain dict, as pre-commit does it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from reconciler.base.credentials import token_problem, url_problem
from reconciler.base.errors import CredentialsError
from reconciler.providers.base import Provider

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


@cache
def limits(provider: str) -> dict[str, Any]:
    """The provider's published limits, shipped as data (reconciler/data/<provider>.json)."""
    text = (resources.files("reconciler") / "data" / f"{provider}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def required_assets(provider: str) -> tuple[str, ...]:
    return tuple(limits(provider).get("required_files", ()))


def _cloudflare(env: Mapping[str, str], label: str | None) -> Provider:
    from reconciler.providers.cloudflare.api import CloudflareProvider, endpoint_from_env

    return CloudflareProvider(endpoint_from_env(env, label))


def _cohere(env: Mapping[str, str], label: str | None) -> Provider:
    from reconciler.providers.cohere.api import CohereProvider, endpoint_from_env

    return CohereProvider(endpoint_from_env(env, label))


FACTORIES: dict[str, Callable[[Mapping[str, str], str | None], Provider]] = {
    "cloudflare": _cloudflare,
    "cohere": _cohere,
}


def build(name: str, env: Mapping[str, str], label: str | None = None) -> Provider:
    return FACTORIES[name](env, label)
