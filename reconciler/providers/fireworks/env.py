"""The environment variables Fireworks AI is configured by, as its official SDK reads them,
and where the API is when they say nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from reconciler.base.errors import CredentialsError

if TYPE_CHECKING:
    from reconciler.providers.endpoint import Endpoint

TOKEN_ENV = "FIREWORKS_API_KEY"
URL_ENV = "FIREWORKS_BASE_URL"
ACCOUNT_ENV = "FIREWORKS_ACCOUNT_ID"

# An origin: every path starts with /v1 (/v1/accounts/{a}/models), as the SDK builds them.
# The sandbox mounts the API under a prefix: http://127.0.0.1:PORT/fireworks.
DEFAULT_BASE_URL = "https://api.fireworks.ai"


def endpoint_from_env(env: Mapping[str, str], label: str | None = None) -> Endpoint:
    """The API's base URL and key, from the environment only. A base URL ending in /v1 is
    refused: the SDK's FIREWORKS_BASE_URL is the origin, and /v1 is added to every path, so
    it would be sent twice (/v1/v1/accounts/...) and every call would answer 404."""
    from reconciler.providers import endpoint as endpoints

    found = endpoints.endpoint_from_env(
        env,
        label,
        token_variable=TOKEN_ENV,
        url_variable=URL_ENV,
        default_url=DEFAULT_BASE_URL,
        missing="create an API key at fireworks.ai (Settings, API Keys) and export it",
    )
    if urlsplit(found.base_url).path.rstrip("/").endswith("/v1"):
        raise CredentialsError(
            f"{URL_ENV} ends in /v1; it is the API's origin without /v1 "
            f"(e.g. {DEFAULT_BASE_URL}), as the official SDK reads it"
        )
    return found
