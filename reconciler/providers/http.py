"""One HTTP layer for every provider: auth, timeouts, error envelopes, no token in any message."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from json import detect_encoding
from typing import TYPE_CHECKING, Any

from reconciler.base import strictjson
from reconciler.base.credentials import (
    MIN_REDACTED_OTHER,
    redact,
    redact_json,
    token_problem,
    url_problem,
)
from reconciler.base.errors import (
    AuthError,
    CredentialsError,
    EndpointError,
    OutcomeUnknown,
    ProviderError,
)
from reconciler.base.untrusted import visible
from reconciler.providers.endpoint import Endpoint
from reconciler.providers.retry import RETRY_STATUSES, RetryPolicy

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("reconciler.http")

# (response JSON) -> the remote's error text, e.g. "Authentication error [code: 10000]"
ErrorParser = Callable[[Any], str]
# (response JSON) -> what an answer of a good status says that makes it a failure all the same,
# e.g. "success: false" (Cloudflare's envelope), or None where it says nothing of the kind
FailureParser = Callable[[Any], "str | None"]

TIMEOUTS = {"connect": 10.0, "read": 60.0, "write": 300.0, "pool": 10.0}
MAX_REMOTE_TEXT = 500  # characters of a remote error message shown in ours
# An answer's body, once decoded: a list of 10,000 finetunes is about 3 MB
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# From an answer's head to its last byte: no API's answer takes that long, a trickle of a byte
# a second does (the read timeout bounds only the wait for each piece)
MAX_ANSWER_SECONDS = 300.0


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
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool = True,
        failed: FailureParser | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # endpoint_from_env has refused these already; an Api made some other way is held to
        # the same rules, so that the HTTP library never sees (and echoes) a malformed token
        problem = token_problem(token_variable, token) or url_problem(
            url_variable, self.base_url, token_variable
        )
        if problem:
            raise CredentialsError(problem)
        self._secrets = [token]
        # redacted from answers too, where a token this short could be a word of one
        self._echoes = [token] if len(token) >= MIN_REDACTED_OTHER else []
        self._token_variable = token_variable
        self._url_variable = url_variable
        self._parse_error = parse_error
        self._failed = failed
        self._settings: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {token}", "User-Agent": "reconciler"},
            "transport": transport,
            "follow_redirects": False,
            "verify": verify,
        }
        self._made: httpx.Client | None = None
        self._making = threading.Lock()
        self._retry = retry or RetryPolicy.from_env()
        self._sleep = sleep
        self._rng = random.Random()

    @classmethod
    def for_endpoint(
        cls,
        endpoint: Endpoint,
        token_variable: str,
        url_variable: str,
        parse_error: ErrorParser,
        transport: httpx.BaseTransport | None = None,
        failed: FailureParser | None = None,
    ) -> Api:
        return cls(
            base_url=endpoint.base_url,
            token=endpoint.token,
            token_variable=token_variable,
            url_variable=url_variable,
            parse_error=parse_error,
            transport=transport,
            verify=endpoint.verify_tls,
            failed=failed,
        )

    def __repr__(self) -> str:
        return f"Api(base_url={self.base_url!r})"

    @property
    def _client(self) -> httpx.Client:
        """Made at the first call, not with the provider: importing httpx and loading the CA
        store take ~0.1 s, which a plan then spends while it hashes rather than before."""
        if self._made is None:
            with self._making:
                if self._made is None:
                    import httpx

                    settings = dict(self._settings)
                    if self.base_url.startswith("http://"):
                        # No TLS is ever spoken (redirects are not followed): skip loading the
                        # CA store, ~35 ms on every run against a local sandbox.
                        settings["verify"] = False
                    self._made = httpx.Client(timeout=httpx.Timeout(**TIMEOUTS), **settings)
        return self._made

    def close(self) -> None:
        if self._made is not None:
            self._made.close()

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
        idempotent: bool = True,
    ) -> Any:
        """Send one request; return its parsed JSON body. `what` names the call in errors.

        Retries what is safe to retry (see retry.py). For a request that is not `idempotent`,
        an unknown outcome raises OutcomeUnknown instead of repeating it blindly.
        """
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            _rewind(files)
            try:
                response, content = self._send(
                    what, method, path, last, idempotent, json, params, data, files
                )
                body = self._unechoed(content, _json(content))
                self._refuse_retry_status(what, response, body, last, idempotent)
            except _TryAgain as again:
                self._wait(what, attempt, again.retry_after, again.reason)
                continue
            return self._result(what, response, body, ok)
        raise AssertionError("unreachable")

    def _send(
        self,
        what: str,
        method: str,
        path: str,
        last: bool,
        idempotent: bool,
        json: Any,
        params: Mapping[str, Any] | None,
        data: Mapping[str, str] | None,
        files: Any,
    ) -> tuple[httpx.Response, bytes]:
        """One attempt: the response and its body, or _TryAgain where another attempt is safe,
        or the error that ends the call."""
        import httpx  # for its exception classes (free once _client has loaded it)

        started = time.monotonic()
        try:
            request = self._client.build_request(
                method, path, json=json, params=params, data=data, files=files
            )
            response = self._client.send(request, stream=True)
            try:
                content = self._read(what, response)
            finally:
                response.close()
        except (
            httpx.LocalProtocolError,
            httpx.UnsupportedProtocol,
            httpx.InvalidURL,
            UnicodeEncodeError,
        ) as exc:
            # A request this side could not form: repeating it cannot help, and the text of
            # such an error may quote a header (the token) or the URL. Never retried.
            raise EndpointError(
                f"{what}: the request could not be sent as formed ({type(exc).__name__}); "
                f"check {self._token_variable} and {self._url_variable}"
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise self._unreached(what, exc, last) from None
        except httpx.TransportError as exc:
            raise self._lost(what, exc, last, idempotent) from None
        except httpx.DecodingError:
            raise EndpointError(
                f"{what}: {self.base_url} answered with a body that cannot be decoded as its "
                "Content-Encoding says"
            ) from None
        self._log_response(method, path, response, started)
        return response, content

    def _read(self, what: str, response: httpx.Response) -> bytes:
        """The answer's body, decoded (gzip), bounded in size and in time: an answer without
        end, a compression bomb or a trickle ends the call instead of filling the memory or
        waiting forever (the read timeout bounds only the wait for each piece)."""
        chunks: list[bytes] = []
        size = 0
        started = time.monotonic()  # the answer's head has come: its body has this long
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise EndpointError(
                    f"{what}: {self.base_url} answered more than {MAX_ANSWER_BYTES:,} bytes, far "
                    f"more than any answer of the API; is {self._url_variable} right?"
                )
            if time.monotonic() - started > MAX_ANSWER_SECONDS:
                raise EndpointError(
                    f"{what}: {self.base_url} took more than {MAX_ANSWER_SECONDS:g}s to send its "
                    f"answer ({size:,} bytes so far); stopped waiting"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _unreached(self, what: str, exc: Exception, last: bool) -> Exception:
        """Never sent: safe to try again whatever the request (but a certificate that fails
        verification is not transient: said at once)."""
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return EndpointError(
                f"{what}: the TLS certificate of {self.base_url} could not be verified "
                f"({self._reason(exc)}). If it is a test endpoint you trust, name it in "
                "RECONCILER_INSECURE_TLS to turn verification off for it alone"
            )
        if last:
            return EndpointError(
                f"{what}: cannot reach {self.base_url} ({self._reason(exc)}) after "
                f"{self._retry.attempts} attempts; check {self._url_variable} and the network"
            )
        return _TryAgain(f"cannot reach {self.base_url} ({self._reason(exc)})")

    def _lost(self, what: str, exc: Exception, last: bool, idempotent: bool) -> Exception:
        """Sent, perhaps acted on, answer lost: a timeout or a reset mid-way."""
        if not idempotent:
            return OutcomeUnknown(f"{what}: {self._reason(exc)} after the request was sent")
        if last:
            return EndpointError(
                f"{what}: {self.base_url} failed {self._retry.attempts} times ({self._reason(exc)})"
            )
        return _TryAgain(self._reason(exc))

    def _unechoed(self, content: bytes, body: Any) -> Any:
        """The answer with the token redacted from every string in it, in any case: an API
        that gives it back (as a finetune's name, in a description) must not have it shown
        or recorded. Most answers (UTF-8, as JSON is sent) hold neither it nor a JSON escape
        that could spell it: those are not walked."""
        if not self._echoes or body is _NOT_JSON:
            return body
        lowered = content.lower()
        spelt = self._echoes[0].lower().encode()
        if detect_encoding(content) == "utf-8" and b"\\u" not in lowered and spelt not in lowered:
            return body
        return redact_json(body, self._echoes)

    def _log_response(
        self, method: str, path: str, response: httpx.Response, started: float
    ) -> None:
        elapsed = (time.monotonic() - started) * 1000
        log.info("%s %s -> %s in %.0f ms", method, path, response.status_code, elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s: answered %s bytes (%s)%s",
                method,
                path,
                response.headers.get("content-length", "?"),
                visible(response.headers.get("content-type", "no content type")[:100]),
                f", request id {rid}" if (rid := _request_id(response)) else "",
            )

    def _refuse_retry_status(
        self, what: str, response: httpx.Response, body: Any, last: bool, idempotent: bool
    ) -> None:
        """A status worth another attempt (429, 5xx): _TryAgain, or the error that ends it."""
        if response.status_code not in RETRY_STATUSES:
            return
        remote = self._error_text(body, response)
        refused = response.status_code == 429  # refused, not acted on
        if not refused and not idempotent:
            raise OutcomeUnknown(f"{what}: HTTP {response.status_code}: {remote}")
        if not last:
            raise _TryAgain(remote, response.headers.get("Retry-After"))
        raise ProviderError(
            f"{what}: HTTP {response.status_code} after {self._retry.attempts} attempts: {remote}"
        )

    def _wait(self, what: str, attempt: int, retry_after: str | None, why: str) -> None:
        delay = self._retry.delay(attempt, retry_after, self._rng)
        # said on the first failure, whatever the verbosity: a call that will spend seconds
        # in backoff must not look like a hang; the later attempts only with -v
        log.log(
            logging.WARNING if attempt == 1 else logging.INFO,
            "%s: %s; retrying in %.1fs (attempt %d of %d)",
            what,
            why,
            delay,
            attempt + 1,
            self._retry.attempts,
        )
        self._sleep(delay)

    def _error_text(self, body: Any, response: httpx.Response, otherwise: str = "") -> str:
        """The remote's error text as one visible line: an API may echo the request (the
        token) or carry line breaks and escapes into our message."""
        otherwise = otherwise or f"HTTP {response.status_code}"
        if body is _NOT_JSON:
            return otherwise
        try:
            text = str(self._parse_error(body) or "")
        except Exception:  # an envelope of an unexpected shape: say less, not crash
            text = ""
        return self._clean(text) or otherwise

    def _clean(self, text: str) -> str:
        text = visible(redact(text, self._secrets))
        return text if len(text) <= MAX_REMOTE_TEXT else text[: MAX_REMOTE_TEXT - 1] + "…"

    def _reason(self, exc: Exception) -> str:
        text = str(exc) or type(exc).__name__
        # httpx's messages carry the errno text, never headers; keep them short, and clean
        # in case a future one quotes what it was given
        return self._clean(text.splitlines()[0][:200])

    def _result(self, what: str, response: httpx.Response, body: Any, ok: tuple[int, ...]) -> Any:
        if body is _NOT_JSON:
            kind = visible(response.headers.get("content-type", "no content type")[:100])
            raise EndpointError(
                f"{what}: {self.base_url} answered HTTP {response.status_code} with {kind}, "
                f"not the API's JSON; is {self._url_variable} right?"
            )
        if response.status_code in ok:
            self._refuse_failure(what, response, body)
            return body
        remote = self._error_text(body, response)
        if response.status_code in (401, 403):
            raise AuthError(
                f"{what}: the API rejected the token: {remote}. "
                f"Check {self._token_variable} (it needs the right permissions for this account)"
            )
        raise ProviderError(f"{what}: HTTP {response.status_code}: {remote}")

    def _refuse_failure(self, what: str, response: httpx.Response, body: Any) -> None:
        """An answer of a good status whose body says the call failed is a failure: read as a
        success, an empty `result` beside `success: false` would be an empty account."""
        failure = self._failed(body) if self._failed is not None else None
        if failure is not None:
            remote = self._error_text(body, response, "no error given")
            raise ProviderError(
                f"{what}: the API answered HTTP {response.status_code} with {failure}: {remote}"
            )


_NOT_JSON = object()


class _TryAgain(Exception):
    """This attempt failed in a way another attempt may mend."""

    def __init__(self, reason: str, retry_after: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _rewind(files: Any) -> None:
    """A retried upload sends each file from the top."""
    if hasattr(files, "values"):
        for part in files.values():
            if hasattr(part[1], "seek"):
                part[1].seek(0)


def _request_id(response: httpx.Response) -> str:
    """The id the API gives a request, for a support ticket (Cloudflare: cf-ray)."""
    for header in ("cf-ray", "x-request-id", "request-id"):
        value = response.headers.get(header)
        if value:
            return visible(value[:100])
    return ""


def _json(content: bytes) -> Any:
    """The answer's JSON, read strictly (strictjson: no key twice, no NaN, no number too large,
    no nesting too deep), so that no value the lockfile's reader refuses enters through an
    answer; _NOT_JSON for anything else."""
    try:
        return strictjson.loads(content.decode(detect_encoding(content)))
    except (ValueError, UnicodeDecodeError):  # strictjson.Refused is a ValueError
        return _NOT_JSON
