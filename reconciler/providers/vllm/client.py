"""One vLLM server, over HTTP: what it serves, loading and unloading adapters, a chat, its
health. The routes (vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True):

    GET  /health                 200, empty body
    GET  /v1/models              the base model(s) and every loaded adapter (answers.py)
    POST /v1/load_lora_adapter   {lora_name, lora_path, load_inplace} -> 200, plain text
    POST /v1/unload_lora_adapter {lora_name} -> 200, plain text; 404 for a name not loaded
    POST /v1/chat/completions    an OpenAI chat completion

Every call has bounded timeouts and reads a bounded answer; VLLM_API_KEY, when set, goes as
`Authorization: Bearer`. Failures are our errors, never httpx's:

    EndpointError    unreachable, not answering, or not answering vLLM's shape
    OutcomeUnknown   a load or unload sent and its answer lost: read /v1/models before again
    AuthError        the server refused the key (or wants one)
    VllmError        vLLM's own refusal, its message escaped and cut, its type kept
                     (AlreadyLoaded: a load of a name already loaded, without inplace)

No call is retried here: a fleet's caller decides, server by server (fanout.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.base.credentials import redact, token_problem, url_problem
from reconciler.base.errors import (
    AuthError,
    CredentialsError,
    EndpointError,
    OutcomeUnknown,
    ProviderError,
)
from reconciler.base.untrusted import visible
from reconciler.providers.vllm import answers
from reconciler.providers.vllm.answers import ChatReply, Malformed, Models
from reconciler.providers.vllm.env import API_KEY_ENV

MAX_TEXT = 500  # characters of a server's error message shown in ours
MAX_MODELS_ANSWER = 16 << 20  # /v1/models with thousands of adapters is a few MiB
MAX_CHAT_ANSWER = 8 << 20
MAX_SMALL_ANSWER = 1 << 20  # load, unload, health, errors: a line of text


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `load` is the read timeout of a load: vLLM answers once the adapter is read."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 5.0
    load: float = 300.0
    chat: float = 120.0


class VllmError(ProviderError):
    """vLLM refused a request: its status and error type ("NotFoundError", "BadRequestError",
    "InvalidUserInput"), None when the answer was not vLLM's error envelope."""

    def __init__(self, message: str, status: int, kind: str | None) -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


class AlreadyLoaded(VllmError):
    """A load of a name the server has loaded already (without load_inplace)."""


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    raw: bytes


class VllmClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        verify: bool = True,
        timeouts: Timeouts = Timeouts(),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # fleet.servers has checked a URL from the config or the environment; one given some
        # other way is held to the same rules, as the messages below show it
        problem = url_problem("a vLLM server's URL", self.base_url, API_KEY_ENV)
        if api_key is not None:
            problem = problem or token_problem(API_KEY_ENV, api_key)
        if problem:
            raise CredentialsError(problem)
        self._key = api_key
        self._timeouts = timeouts
        headers = {"User-Agent": "reconciler"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=self._timeout(timeouts.read),
            follow_redirects=False,
            # plain http speaks no TLS: loading the CA store would only cost time
            verify=verify if self.base_url.startswith("https://") else False,
            transport=transport,
        )

    def __repr__(self) -> str:  # the key must not reach a log through repr
        return f"VllmClient({self.base_url!r})"

    def __enter__(self) -> VllmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _timeout(self, read: float) -> httpx.Timeout:
        t = self._timeouts
        return httpx.Timeout(connect=t.connect, read=read, write=t.write, pool=t.pool)

    # --- the calls ---------------------------------------------------------------------

    def health(self) -> None:
        """Returns when the server answers /health with 200; EndpointError otherwise."""
        answer = self._request("health", "GET", "/health", limit=MAX_SMALL_ANSWER)
        if answer.status != 200:
            raise EndpointError(
                f"health: {self.base_url} is not healthy (HTTP {answer.status} from /health)"
            )

    def models(self) -> Models:
        """The base model(s) and the adapters loaded, checked (answers.models)."""
        what = "list models"
        answer = self._request(what, "GET", "/v1/models", limit=MAX_MODELS_ANSWER)
        body = self._ok_json(what, answer)
        try:
            return answers.models(body)
        except Malformed as exc:
            raise self._malformed(what, exc) from None

    def load(self, name: str, path: str, *, inplace: bool = False) -> None:
        """Load the adapter at `path` (as the server sees it) as `name`."""
        what = f"load adapter {answers.shown(name)}"
        _own(answers.checked_id, name, "adapter name")
        _own(answers.checked_root, path, "adapter path")
        body = {"lora_name": name, "lora_path": path, "load_inplace": inplace}
        read = self._timeouts.load
        answer = self._request(what, "POST", "/v1/load_lora_adapter", json=body, read=read)
        if answer.status != 200:
            raise self._refused(what, answer)

    def unload(self, name: str) -> bool:
        """Unload `name`: True if it was loaded, False if the server did not have it."""
        what = f"unload adapter {answers.shown(name)}"
        _own(answers.checked_id, name, "adapter name")
        answer = self._request(what, "POST", "/v1/unload_lora_adapter", json={"lora_name": name})
        if answer.status == 200:
            return True
        error = self._refused(what, answer)
        if isinstance(error, VllmError) and error.status == 404 and error.kind is not None:
            return False
        raise error

    def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int | None = None,
    ) -> ChatReply:
        """One chat completion (no stream) from `model`, a base or a loaded adapter."""
        what = f"chat with {answers.shown(model)}"
        body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        answer = self._request(
            what,
            "POST",
            "/v1/chat/completions",
            json=body,
            read=self._timeouts.chat,
            limit=MAX_CHAT_ANSWER,
            lost_is_unknown=False,
        )
        try:
            return answers.chat_reply(self._ok_json(what, answer))
        except Malformed as exc:
            raise self._malformed(what, exc) from None

    # --- one request -------------------------------------------------------------------

    def _request(
        self,
        what: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        read: float | None = None,
        limit: int = MAX_SMALL_ANSWER,
        lost_is_unknown: bool | None = None,
    ) -> _Answer:
        """Send one request, read at most `limit` bytes of the answer. A POST whose answer is
        lost is OutcomeUnknown unless `lost_is_unknown` is False (a chat changes nothing)."""
        unknown = method == "POST" if lost_is_unknown is None else lost_is_unknown
        timeout = self._timeout(read if read is not None else self._timeouts.read)
        try:
            with self._http.stream(method, path, json=json, timeout=timeout) as response:
                raw = self._read(what, response, limit)
                kind = response.headers.get("content-type", "")
                return _Answer(response.status_code, kind, raw)
        except (
            httpx.LocalProtocolError,
            httpx.UnsupportedProtocol,
            httpx.InvalidURL,
            UnicodeEncodeError,
        ) as exc:
            # formed badly on this side: its text may quote a header (the key); never shown
            raise EndpointError(
                f"{what}: the request to {self.base_url} could not be sent as formed "
                f"({type(exc).__name__}); check {API_KEY_ENV} and the server's URL"
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise EndpointError(
                f"{what}: cannot reach {self.base_url} ({self._reason(exc)})"
            ) from None
        except httpx.TransportError as exc:
            raise self._lost(what, exc, unknown) from None

    def _read(self, what: str, response: httpx.Response, limit: int) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_big(what, limit)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:  # counted after decoding: a compressed bomb stops here too
                raise self._too_big(what, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_big(self, what: str, limit: int) -> EndpointError:
        return EndpointError(
            f"{what}: {self.base_url} answered more than {limit} bytes; is it a vLLM server?"
        )

    def _lost(self, what: str, exc: Exception, unknown: bool) -> ProviderError:
        reason = self._reason(exc)
        if unknown:
            return OutcomeUnknown(
                f"{what}: sent to {self.base_url}, but the answer was lost ({reason}); it may "
                "have been done: read the server's /v1/models before trying again"
            )
        return EndpointError(f"{what}: {self.base_url} did not answer ({reason})")

    # --- reading answers ---------------------------------------------------------------

    def _ok_json(self, what: str, answer: _Answer) -> Any:
        if answer.status != 200:
            raise self._refused(what, answer)
        try:
            return answers.parse_json(answer.raw)
        except Malformed:
            raise self._not_vllm(what, answer) from None

    def _refused(self, what: str, answer: _Answer) -> ProviderError:
        """The error a non-200 answer stands for."""
        status = answer.status
        try:
            body = answers.parse_json(answer.raw)
        except Malformed:
            return self._not_vllm(what, answer)
        text, kind = answers.error_text(body)
        message = self._clean(text) or "no message"
        kind = self._clean(kind)[:100] if kind else None
        if status in (401, 403):
            return self._auth(what, message)
        if 300 <= status < 400 or (status in (404, 405) and kind is None):
            return EndpointError(
                f"{what}: {self.base_url} answered HTTP {status} ({message}); is it the root "
                "URL of a vLLM server started with --enable-lora and "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True?"
            )
        refusal = AlreadyLoaded if "already been loaded" in text else VllmError
        return refusal(f"{what}: {self.base_url} answered HTTP {status}: {message}", status, kind)

    def _auth(self, what: str, message: str) -> AuthError:
        if self._key is None:
            return AuthError(
                f"{what}: {self.base_url} wants an API key ({message}); set {API_KEY_ENV} to "
                "the key the server was started with (--api-key)"
            )
        return AuthError(
            f"{what}: {self.base_url} refused the API key ({message}); check {API_KEY_ENV}"
        )

    def _not_vllm(self, what: str, answer: _Answer) -> EndpointError:
        kind = visible(answer.content_type[:100]) or "no content type"
        body = "an empty body" if not answer.raw else kind
        return EndpointError(
            f"{what}: {self.base_url} answered HTTP {answer.status} with {body}, not vLLM's "
            "JSON; is it a vLLM server, and up?"
        )

    def _malformed(self, what: str, exc: Malformed) -> EndpointError:
        return EndpointError(f"{what}: {self.base_url} answered {exc}; is it a vLLM server?")

    def _clean(self, text: str) -> str:
        text = visible(redact(text, [self._key] if self._key else []))
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"

    def _reason(self, exc: Exception) -> str:
        text = str(exc) or type(exc).__name__
        return self._clean(text.splitlines()[0][:200])


def _own(check: Callable[[object], str], value: str, what: str) -> None:
    """Our own name or path, held to the rules we hold the server's to (ValueError: a bug or
    an unchecked config, not the server's fault)."""
    try:
        check(value)
    except Malformed as exc:
        raise ValueError(f"not a usable {what}: {exc}") from None
