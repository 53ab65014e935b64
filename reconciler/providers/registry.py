"""Provider name -> how to build it and what it needs; a plain dict, as pre-commit does it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .base import Provider


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
    from .cloudflare import CloudflareProvider, endpoint_from_env

    return CloudflareProvider(endpoint_from_env(env, label))


def _cohere(env: Mapping[str, str], label: str | None) -> Provider:
    from .cohere import CohereProvider, endpoint_from_env

    return CohereProvider(endpoint_from_env(env, label))


FACTORIES: dict[str, Callable[[Mapping[str, str], str | None], Provider]] = {
    "cloudflare": _cloudflare,
    "cohere": _cohere,
}


def build(name: str, env: Mapping[str, str], label: str | None = None) -> Provider:
    return FACTORIES[name](env, label)
