"""The HTTP layer over a real loopback server that answers from a script."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import serving

from reconciler.errors import EndpointError, OutcomeUnknown, ProviderError
from reconciler.model import DesiredFinetune
from reconciler.providers.cloudflare import CloudflareProvider, _error_text
from reconciler.providers.http import Api
from reconciler.providers.registry import Endpoint
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
