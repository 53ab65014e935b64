"""The HTTP layer over a real loopback server that answers from a script."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import serving

from reconciler.base.errors import CredentialsError, EndpointError, OutcomeUnknown, ProviderError
from reconciler.base.model import DesiredFinetune
from reconciler.providers.cloudflare.api import CloudflareProvider, _error_text
from reconciler.providers.endpoint import Endpoint
from reconciler.providers.http import Api
from reconciler.providers.retry import RetryPolicy

ACCOUNT = "0" * 32
OK_LIST = {"success": True, "errors": [], "messages": [], "result": []}


class Scripted:
    """Answers each request with the next scripted reply: (status, headers, body) or "drop"."""

    def __init__(self) -> None:
        self.script: list[object] = []
        self.seen: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.seen.append((self.command, self.path))
                reply = outer.script.pop(0) if outer.script else (200, {}, OK_LIST)
                if reply == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers, body = reply  # type: ignore[misc]
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.handler = Handler
        self.url = ""


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    s = Scripted()
    with serving(s.handler) as url:
        s.url = url
        yield s


def api(url: str, slept: list[float], attempts: int = 4) -> Api:
    return Api(
        base_url=url,
        token="t0ken",
        token_variable="CLOUDFLARE_API_TOKEN",
        url_variable="CLOUDFLARE_API_BASE_URL",
        parse_error=_error_text,
        retry=RetryPolicy(attempts=attempts, base_delay=0.01),
        sleep=slept.append,
    )


def error(code: int, message: str) -> dict[str, object]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


def test_reads_are_retried_on_5xx_and_honour_retry_after(scripted: Scripted) -> None:
    scripted.script = [
        (503, {}, error(10001, "busy")),
        (429, {"Retry-After": "7"}, error(971, "slow down")),
        (200, {}, OK_LIST),
    ]
    slept: list[float] = []
    assert api(scripted.url, slept).call("list", "GET", "/x") == OK_LIST
    assert len(scripted.seen) == 3
    assert slept[1] == 7.0 and 0 <= slept[0] <= 0.01


def test_bounded_attempts_end_with_the_call_and_the_remote_message(scripted: Scripted) -> None:
    scripted.script = [(502, {}, error(1, "bad gateway"))] * 3
    with pytest.raises(ProviderError) as info:
        api(scripted.url, [], attempts=3).call("list finetunes of account x", "GET", "/x")
    assert (
        str(info.value)
        == "list finetunes of account x: HTTP 502 after 3 attempts: bad gateway [code: 1]"
    )
    assert len(scripted.seen) == 3


def test_a_change_with_an_unknown_outcome_is_not_repeated(scripted: Scripted) -> None:
    scripted.script = ["drop"]
    with pytest.raises(OutcomeUnknown, match=r"create x: .* after the request was sent"):
        api(scripted.url, []).call("create x", "POST", "/x", json={}, idempotent=False)
    assert len(scripted.seen) == 1
    scripted.script = [(500, {}, error(10001, "oops"))]
    with pytest.raises(OutcomeUnknown, match="HTTP 500"):
        api(scripted.url, []).call("create x", "POST", "/x", json={}, idempotent=False)
    assert len(scripted.seen) == 2


def test_a_refused_change_is_retried(scripted: Scripted) -> None:
    scripted.script = [(429, {"Retry-After": "0"}, error(971, "slow down"))]
    created = {"success": True, "errors": [], "messages": [], "result": {"id": "1"}}
    scripted.script.append((200, {}, created))
    assert api(scripted.url, []).call("create", "POST", "/x", json={}, idempotent=False) == created


def test_create_whose_answer_was_lost_is_adopted_not_duplicated(scripted: Scripted) -> None:
    remote = {
        "id": "abc",
        "name": "n",
        "model": "@cf/m/x-lora",
        "description": None,
        "public": False,
    }
    scripted.script = ["drop", (200, {}, {**OK_LIST, "result": [remote]})]
    provider = CloudflareProvider(Endpoint(scripted.url, "t0ken", "test"))
    desired = DesiredFinetune("n", "cloudflare", ACCOUNT, "@cf/m/x-lora", None, False, ())
    adopted = provider.create_finetune(desired)
    assert adopted.id == "abc"
    assert [m for m, _ in scripted.seen] == ["POST", "GET"]


def test_create_lost_and_absent_is_sent_again(scripted: Scripted) -> None:
    made = {"id": "new", "name": "n", "model": "@cf/m/x-lora"}
    scripted.script = ["drop", (200, {}, OK_LIST), (200, {}, {**OK_LIST, "result": made})]
    provider = CloudflareProvider(Endpoint(scripted.url, "t0ken", "test"))
    desired = DesiredFinetune("n", "cloudflare", ACCOUNT, "@cf/m/x-lora", None, False, ())
    assert provider.create_finetune(desired).id == "new"
    assert [m for m, _ in scripted.seen] == ["POST", "GET", "POST"]


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slept: list[float] = []
    with pytest.raises(EndpointError, match=r"cannot reach .* after 4 attempts"):
        api(f"http://127.0.0.1:{port}", slept).call("list", "GET", "/x")
    assert len(slept) == 3


# --- local errors and what a message may carry ---------------------------------------------

CANARY = "canary-http-7d2e-never-printed"


def test_a_request_that_cannot_be_formed_is_not_retried_and_shows_no_header(
    scripted: Scripted,
) -> None:
    slept: list[float] = []
    client = api(scripted.url, slept)
    # a header value the HTTP library refuses as it sends (as a token with a newline was)
    client._settings["headers"]["Authorization"] = f"Bearer {CANARY}\n"
    with pytest.raises(EndpointError) as info:
        client.call("list finetunes of account x", "GET", "/x")
    assert str(info.value) == (
        "list finetunes of account x: the request could not be sent as formed "
        "(LocalProtocolError); check CLOUDFLARE_API_TOKEN and CLOUDFLARE_API_BASE_URL"
    )
    assert slept == [] and scripted.seen == []


@pytest.mark.parametrize(
    ("token", "what"),
    [
        ("t0ken\n", "ends with a line break (as `echo` or a file's last line adds)"),
        ("t0ken ", "starts or ends with whitespace"),
        ("t0k\u00e9n", "contains a character outside printable ASCII"),
        ("t0\x01ken", "contains a control character"),
    ],
)
def test_an_api_never_holds_a_malformed_token(token: str, what: str) -> None:
    with pytest.raises(CredentialsError) as info:
        Api(
            base_url="http://127.0.0.1:1",
            token=token,
            token_variable="CLOUDFLARE_API_TOKEN",
            url_variable="CLOUDFLARE_API_BASE_URL",
            parse_error=_error_text,
        )
    assert str(info.value).startswith(f"CLOUDFLARE_API_TOKEN {what}; ")
    assert "t0k" not in str(info.value)


def test_a_remote_error_is_one_clean_line_without_the_token(scripted: Scripted) -> None:
    echoed = f"bad header 'Bearer {CANARY}'\nPlan: 9 to create.\x1b[31m\u202e"
    scripted.script = [(400, {}, error(6003, echoed))]
    client = Api(
        base_url=scripted.url,
        token=CANARY,
        token_variable="CLOUDFLARE_API_TOKEN",
        url_variable="CLOUDFLARE_API_BASE_URL",
        parse_error=_error_text,
        retry=RetryPolicy(attempts=1),
    )
    with pytest.raises(ProviderError) as info:
        client.call("list", "GET", "/x")
    assert str(info.value) == (
        "list: HTTP 400: bad header 'Bearer ***'\\nPlan: 9 to create.\\x1b[31m\\u202e [code: 6003]"
    )
    scripted.script = [(400, {}, error(1, "x" * 5000))]
    with pytest.raises(ProviderError) as info:
        client.call("list", "GET", "/x")
    assert len(str(info.value)) < 600 and str(info.value).endswith("…")


def test_an_answer_nested_without_end_is_not_the_apis_json(tmp_path: Path) -> None:
    class Deep(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"result": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Deep) as url, pytest.raises(EndpointError) as info:
        api(url, []).call("list", "GET", "/x")
    assert str(info.value) == (
        f"list: {url} answered HTTP 200 with application/json, not the API's JSON; "
        "is CLOUDFLARE_API_BASE_URL right?"
    )
