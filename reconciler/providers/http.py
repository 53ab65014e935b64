"""One HTTP layer for every provider: auth, timeouts, error envelopes, no token in any message."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..errors import AuthError, EndpointError, ProviderError

# (response JSON) -> the remote's error text, e.g. "Authentication error [code: 10000]"
ErrorParser = Callable[[Any], str]

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=300.0, pool=10.0)


class Api:
    """A base URL, a token and the provider's error shape. Raises our errors, never httpx's."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        token_variable: str,
        url_variable: str,
        parse_error: ErrorParser,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token_variable = token_variable
        self._url_variable = url_variable
        self._parse_error = parse_error
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "reconciler"},
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"Api(base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        files: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """Send one request; return its parsed JSON body. `what` names the call in errors."""
        try:
            response = self._client.request(
                method, path, json=json, params=params, data=data, files=files
            )
        except httpx.TimeoutException as exc:
            raise EndpointError(
                f"{what}: {self.base_url} timed out ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise EndpointError(
                f"{what}: cannot reach {self.base_url} ({_reason(exc)}); "
                f"check {self._url_variable} and the network"
            ) from None
        body = _json(response)
        if body is _NOT_JSON:
            kind = response.headers.get("content-type", "no content type")
            raise EndpointError(
                f"{what}: {self.base_url} answered HTTP {response.status_code} with {kind}, "
                f"not the API's JSON; is {self._url_variable} right?"
            )
        if response.status_code in ok:
            return body
        remote = self._parse_error(body) or f"HTTP {response.status_code}"
        if response.status_code in (401, 403):
            raise AuthError(
                f"{what}: the API rejected the token: {remote}. "
                f"Check {self._token_variable} (it needs the right permissions for this account)"
            )
        raise ProviderError(f"{what}: HTTP {response.status_code}: {remote}")


_NOT_JSON = object()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    # httpx's messages carry the errno text, never headers; keep them short
    return text.splitlines()[0][:200]
