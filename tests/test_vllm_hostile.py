"""The vLLM client against a hostile server double on 127.0.0.1: answers that are not JSON, too
large (declared, streamed or compressed), ids with control characters, bidi controls or no
bound, roots that are not paths, error messages that echo the key, redirects, silence.

Every refusal is one of our errors, says which server, and shows any remote text escaped and
cut: nothing the server sends reaches a message raw."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.serving import make_server

from reconciler.base.errors import AuthError, EndpointError, OutcomeUnknown, ProviderError
from reconciler.providers.vllm.answers import MAX_CARDS, MAX_ID, ModelCard
from reconciler.providers.vllm.client import (
    MAX_MODELS_ANSWER,
    MAX_TEXT,
    Timeouts,
    VllmClient,
    VllmError,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

KEY = "hostile-test-key-7c2a-never-shown"
BASE = "meta-llama/Llama-3.1-8B-Instruct"

# (environ) -> (status, headers, body chunks)
Answer = Callable[["WSGIEnvironment"], tuple[str, list[tuple[str, str]], Iterable[bytes]]]


class Double:
    """A WSGI app answering each path as the test scripts it."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ["PATH_INFO"])
        wsgi_input = environ["wsgi.input"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            wsgi_input.read(length)
        if path not in self.answers:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"detail":"Not Found"}']
        status, headers, body = self.answers[path](environ)
        start_response(status, headers)
        return body


@pytest.fixture
def double() -> Iterator[tuple[Double, str]]:
    app = Double()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def json_answer(body: Any, status: str = "200 OK") -> Answer:
    payload = json.dumps(body).encode()
    return lambda _: (status, [("Content-Type", "application/json")], [payload])


def card(ident: Any, root: Any = "/store/x", parent: Any = BASE) -> dict[str, Any]:
    return {"id": ident, "object": "model", "root": root, "parent": parent}


def models_with(*cards: dict[str, Any]) -> Answer:
    return json_answer({"object": "list", "data": [card(BASE, BASE, None), *cards]})


def refused(client: VllmClient, call: Callable[[], object], kind: type[Exception]) -> str:
    """The message of the error `call` raises: our error, naming the server, nothing raw."""
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert client.base_url in message
    assert KEY not in message
    assert message.isprintable(), repr(message)
    assert len(message) < 2 * MAX_TEXT + 400
    return message


@pytest.fixture
def client(double: tuple[Double, str]) -> Iterator[VllmClient]:
    with VllmClient(double[1], KEY, timeouts=Timeouts(read=1.0, load=1.0, chat=1.0)) as made:
        yield made


@pytest.fixture
def app(double: tuple[Double, str]) -> Double:
    return double[0]


def test_the_double_answers_like_vllm_when_it_behaves(app: Double, client: VllmClient) -> None:
    app.answers["/v1/models"] = models_with(card("support", "/store/support-0a1b"))
    served = client.models()
    assert served.adapters == (ModelCard("support", "/store/support-0a1b", BASE),)


# --- not JSON, or too much of it ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        (b"", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b"NaN-ish {", "application/json"),
    ],
)
def test_an_answer_that_is_not_json_is_not_vllm(
    app: Double, client: VllmClient, body: bytes, content_type: str
) -> None:
    app.answers["/v1/models"] = lambda _: ("200 OK", [("Content-Type", content_type)], [body])
    message = refused(client, client.models, EndpointError)
    assert "not vLLM's JSON" in message or "answered not JSON" in message


def test_an_html_error_page_is_not_vllm_whatever_its_status(
    app: Double, client: VllmClient
) -> None:
    page = b"<html>\x1b[31mproxy error</html>"
    app.answers["/v1/load_lora_adapter"] = lambda _: (
        "502 Bad Gateway",
        [("Content-Type", "text/html\x1b[2J")],
        [page],
    )
    message = refused(client, lambda: client.load("a", "/store/a"), EndpointError)
    assert "HTTP 502 with text/html\\x1b[2J" in message


def test_a_declared_huge_answer_is_refused_before_reading(app: Double, client: VllmClient) -> None:
    head = [("Content-Type", "application/json"), ("Content-Length", str(10 << 30))]
    app.answers["/v1/models"] = lambda _: ("200 OK", head, [b"{}"])
    message = refused(client, client.models, EndpointError)
    assert f"more than {MAX_MODELS_ANSWER} bytes" in message


def test_a_streamed_huge_answer_is_cut_off(app: Double, client: VllmClient) -> None:
    sent = [0]

    def endless(_: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        def chunks() -> Iterator[bytes]:
            yield b'{"data": ["'
            while sent[0] < 64 << 20:  # stops on its own should the client never hang up
                sent[0] += 1 << 16
                yield b"x" * (1 << 16)

        return "200 OK", [("Content-Type", "application/json")], chunks()

    app.answers["/v1/models"] = endless
    message = refused(client, client.models, EndpointError)
    assert "more than" in message
    assert sent[0] < 48 << 20  # the client hung up long before the end


def test_a_compressed_bomb_is_counted_after_decoding(app: Double, client: VllmClient) -> None:
    bomb = gzip.compress(b'{"data": "' + b"0" * (MAX_MODELS_ANSWER + 1024) + b'"}')
    assert len(bomb) < 100_000
    head = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
    app.answers["/v1/models"] = lambda _: ("200 OK", head, [bomb])
    assert "more than" in refused(client, client.models, EndpointError)


# --- ids, parents and roots ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (card("\x1b[31mred\x1b[0m"), "control or invisible character"),
        (card("good\nFAKE: adapter loaded"), "control or invisible character"),
        (card("evil\u202etxt.exe"), "control or invisible character"),
        (card("zero\u200bwidth"), "control or invisible character"),
        (card("x" * (MAX_ID + 1)), f"{MAX_ID + 1} characters"),
        (card(""), "not a non-empty string"),
        (card(42), "not a non-empty string"),
        (card(None), "not a non-empty string"),
        (card("ok", parent="base\x07"), "a parent with a control"),
        (card("ok", root=None), "a root that is not a path"),
        (card("ok", root=["/a"]), "a root that is not a path"),
        (card("ok", root="/store/\x00x"), "not a printable path"),
        (card("ok", root="/" + "r" * 5000), "not a printable path"),
        ("not a card", "not an object"),
        (card(BASE, BASE, None), "twice"),
    ],
)
def test_a_model_card_out_of_shape_refuses_the_whole_answer(
    app: Double, client: VllmClient, bad: Any, says: str
) -> None:
    app.answers["/v1/models"] = json_answer(
        {"data": [card(BASE, BASE, None), card("fine", "/store/fine"), bad]}
    )
    message = refused(client, client.models, EndpointError)
    assert says in message
    assert "\x1b" not in message and "\u202e" not in message and "\n" not in message


@pytest.mark.parametrize(
    "body", [{}, {"data": {}}, {"data": None}, [], "list", {"data": [None]}, {"data": "x"}]
)
def test_an_envelope_out_of_shape_is_refused(app: Double, client: VllmClient, body: Any) -> None:
    app.answers["/v1/models"] = json_answer(body)
    assert "is it a vLLM server?" in refused(client, client.models, EndpointError)


def test_too_many_cards_are_refused(app: Double, client: VllmClient) -> None:
    cards = [card(f"a{i}") for i in range(MAX_CARDS + 1)]
    app.answers["/v1/models"] = json_answer({"data": cards})
    assert f"{MAX_CARDS + 1} model cards" in refused(client, client.models, EndpointError)


# --- error answers ----------------------------------------------------------------------------


def test_an_error_message_is_escaped_cut_and_never_shows_the_key(
    app: Double, client: VllmClient
) -> None:
    message = f"bad \x1b]0;pwned\x07 {KEY} \u202e" + "long " * 2000
    app.answers["/v1/load_lora_adapter"] = json_answer(
        {"error": {"message": message, "type": "Bad\nRequest", "param": None, "code": 400}},
        "400 Bad Request",
    )
    with pytest.raises(VllmError) as caught:
        client.load("support", "/store/support")
    text = str(caught.value)
    assert "\\x1b]0;pwned\\x07" in text and "***" in text and "\\u202e" in text
    assert text.endswith("…") and len(text) < MAX_TEXT + 100
    assert caught.value.kind == "Bad\\nRequest" and caught.value.status == 400
    refused(client, lambda: client.load("support", "/store/support"), VllmError)


@pytest.mark.parametrize(
    "body",
    [
        {"error": "Unauthorized"},
        {"error": {"message": 12, "type": 3}},
        {"detail": [{"loc": ["body"], "msg": "\x1bx"}]},
        {"something": "else"},
        ["not", "an", "envelope"],
    ],
)
def test_odd_error_envelopes_still_make_our_errors(
    app: Double, client: VllmClient, body: Any
) -> None:
    app.answers["/v1/load_lora_adapter"] = json_answer(body, "400 Bad Request")
    message = refused(client, lambda: client.load("a", "/store/a"), ProviderError)
    assert "HTTP 400" in message


def test_an_unauthorized_answer_echoing_the_key_does_not_show_it(
    app: Double, client: VllmClient
) -> None:
    app.answers["/v1/models"] = json_answer({"error": f"bad key {KEY}"}, "401 Unauthorized")
    assert "refused the API key" in refused(client, client.models, AuthError)


def test_a_redirect_is_not_followed(app: Double, client: VllmClient) -> None:
    app.answers["/v1/models"] = lambda _: (
        "302 Found",
        [("Location", "http://elsewhere.invalid/steal"), ("Content-Type", "application/json")],
        [b"{}"],
    )
    assert "HTTP 302" in refused(client, client.models, EndpointError)


def test_an_unload_404_from_a_proxy_is_not_taken_as_not_loaded(
    app: Double, client: VllmClient
) -> None:
    app.answers["/v1/unload_lora_adapter"] = json_answer({"detail": "Not Found"}, "404 Not Found")
    assert "root URL" in refused(client, lambda: client.unload("a"), EndpointError)
    app.answers["/v1/unload_lora_adapter"] = json_answer(
        {"error": {"message": "gone", "type": "NotFoundError", "param": None, "code": 404}},
        "404 Not Found",
    )
    assert client.unload("a") is False


# --- chat -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"model": "a", "choices": []},
        {"model": "a", "choices": [{"message": {"content": 5}}]},
        {"model": "a\x1b", "choices": [{"message": {"content": "hi"}}]},
        {"model": "a", "choices": [{"message": {"content": "hi"}, "finish_reason": "\n"}]},
        {"choices": [{"message": {"content": "hi"}}]},
    ],
)
def test_a_chat_answer_out_of_shape_is_refused(app: Double, client: VllmClient, body: Any) -> None:
    app.answers["/v1/chat/completions"] = json_answer(body)
    refused(client, lambda: client.chat("a", [{"role": "user", "content": "x"}]), EndpointError)


def test_a_chat_text_is_returned_as_sent_for_the_caller_to_escape(
    app: Double, client: VllmClient
) -> None:
    body = {
        "model": "a",
        "choices": [{"message": {"content": "two\nlines"}, "finish_reason": None}],
    }
    app.answers["/v1/chat/completions"] = json_answer(body)
    reply = client.chat("a", [{"role": "user", "content": "x"}])
    assert (reply.text, reply.finish_reason) == ("two\nlines", None)


# --- silence --------------------------------------------------------------------------------


def test_a_server_that_never_answers_times_out(app: Double, client: VllmClient) -> None:
    release = threading.Event()

    def silent(_: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        release.wait(5)
        return "200 OK", [("Content-Type", "application/json")], [b"{}"]

    app.answers["/v1/models"] = silent
    app.answers["/v1/load_lora_adapter"] = silent
    try:
        started = time.monotonic()
        assert "did not answer" in refused(client, client.models, EndpointError)
        assert time.monotonic() - started < 3
        message = refused(client, lambda: client.load("a", "/store/a"), OutcomeUnknown)
        assert "may have been done" in message
    finally:
        release.set()
