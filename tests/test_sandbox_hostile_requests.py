"""The sandbox against hostile requests (issue 20, L12), over raw HTTP on 127.0.0.1: control
characters from the URL never reach a response header, numbers of any length and JSON of any
depth are answered 4xx in the owning API's shape (never a 500), and names carrying control
characters are refused as a create, never stored."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ACCOUNT, QUICKSTART, Cli

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.common.bodies import MAX_JSON_DEPTH, NotJson, parse_json
from reconciler.sandbox.hub.store import HubStore
from reconciler.sandbox.server import SandboxServer

CF = f"/client/v4/accounts/{ACCOUNT}"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
REPO = "acme/hostile"
CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
# A header line may hold visible ASCII, spaces and tabs; anything else (a bare CR or LF, NUL,
# other controls, bytes past ASCII) is what a hostile URL would smuggle in.
HEADER_LINE = re.compile(rb"[\t\x20-\x7e]*")
LONG = "9" * 5000  # past Python's 4300-digit limit for int(str)


@dataclass(frozen=True)
class Answer:
    status: int
    head: list[bytes]  # the header lines, as sent
    body: bytes

    def header(self, name: str) -> str | None:
        prefix = name.lower().encode() + b":"
        for line in self.head:
            if line.lower().startswith(prefix):
                return line[len(prefix) :].strip().decode("ascii")
        return None

    def json(self) -> object:
        return json.loads(self.body)


def send(
    sb: SandboxServer,
    method: str,
    target: str,
    body: bytes = b"",
    headers: tuple[str, ...] = (),
    token: str | None = DEFAULT_TOKEN,
    timeout: float = 30,
) -> Answer:
    """One request written by hand (no client to clean up the target), its answer as sent."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode("utf-8") + body
    with socket.create_connection(("127.0.0.1", sb.port), timeout=timeout) as conn:
        conn.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := conn.recv(1 << 16)):
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        answer = Answer(int(status_line.split()[1]), header_lines, b"")
        # Read to Content-Length, not to the close: werkzeug holds a connection whose request
        # body was not read (an early 404) open until the client closes it.
        length = int(answer.header("Content-Length") or 0)
        while len(rest) < length and (chunk := conn.recv(1 << 16)):
            rest += chunk
    return Answer(answer.status, header_lines, rest)


def assert_clean_headers(answer: Answer) -> None:
    for line in answer.head:
        assert HEADER_LINE.fullmatch(line), line
    assert not any(line.lower().startswith(b"x-evil") for line in answer.head), answer.head


@pytest.fixture
def hub_repo(sb: SandboxServer, tmp_path: Path) -> str:
    folder = tmp_path / "repo"
    folder.mkdir()
    for name in (CONFIG, WEIGHTS):
        (folder / name).write_bytes((QUICKSTART / "adapters" / "support-v3" / name).read_bytes())
    return HubStore(sb.data_dir).push(REPO, folder)


# --- control characters from the URL never reach a header ---------------------------------


@pytest.mark.parametrize(
    "target",
    [
        f"/hf/{REPO}/resolve/a%0Db/{CONFIG}",  # the case: a bare CR in the revision
        f"/hf/{REPO}/resolve/a%0Ab/{CONFIG}",
        f"/hf/api/models/{REPO}/revision/a%0D%0AX-Evil:%201",
        f"/hf/api/models/{REPO}/tree/a%0D%0AX-Evil:%201",
        f"/hf/api/models/{REPO}/tree/main/a%0D%0AX-Evil:%201",
        f"/hf/api/models/{REPO}/revision/a%00b%1B%5B2J%7F",
        f"/hf/api/models/{REPO}/revision/%C3%A9t%C3%A9%E2%80%AE",
        f"/hf/lfs/{REPO}/{'0' * 40}/a%0D%0AX-Evil:%201",
    ],
)
def test_no_control_character_from_the_url_reaches_a_header(
    sb: SandboxServer, hub_repo: str, target: str
) -> None:
    answer = send(sb, "GET", target, token=None)
    assert answer.status == 404
    assert_clean_headers(answer)
    assert answer.header("X-Error-Message") is not None
    assert list(answer.json()) == ["error"]  # type: ignore[call-overload]  # the Hub's shape


def test_the_error_header_shows_what_was_asked_escaped(sb: SandboxServer, hub_repo: str) -> None:
    answer = send(sb, "GET", f"/hf/{REPO}/resolve/a%0Db/{CONFIG}", token=None)
    assert answer.header("X-Error-Message") == "Invalid rev id: a\\rb"
    assert answer.header("X-Error-Code") == "RevisionNotFound"
    assert answer.json() == {"error": "Invalid rev id: a\rb"}  # the body is JSON: said as is


# --- numbers of any length: the Hub's Range ------------------------------------------------


def test_a_range_starting_past_any_file_is_416(sb: SandboxServer, hub_repo: str) -> None:
    size = (QUICKSTART / "adapters" / "support-v3" / CONFIG).stat().st_size
    answer = send(
        sb, "GET", f"/hf/{REPO}/resolve/main/{CONFIG}", headers=(f"Range: bytes={LONG}-",)
    )
    assert answer.status == 416, answer.body
    assert answer.header("Content-Range") == f"bytes */{size}"
    assert answer.json() == {"error": "Requested Range Not Satisfiable"}


@pytest.mark.parametrize("asked", [f"bytes=0-{LONG}", f"bytes=-{LONG}"])
def test_a_range_ending_past_any_file_is_the_whole_file(
    sb: SandboxServer, hub_repo: str, asked: str
) -> None:
    data = (QUICKSTART / "adapters" / "support-v3" / CONFIG).read_bytes()
    answer = send(sb, "GET", f"/hf/{REPO}/resolve/main/{CONFIG}", headers=(f"Range: {asked}",))
    assert answer.status == 206, answer.body
    assert answer.header("Content-Range") == f"bytes 0-{len(data) - 1}/{len(data)}"
    assert answer.body == data


def test_a_range_in_other_digits_than_ascii_is_ignored(sb: SandboxServer, hub_repo: str) -> None:
    data = (QUICKSTART / "adapters" / "support-v3" / CONFIG).read_bytes()
    # U+0661 is ARABIC-INDIC DIGIT ONE: a digit to \d, not to HTTP
    answer = send(sb, "GET", f"/hf/{REPO}/resolve/main/{CONFIG}", headers=("Range: bytes=\u0661-",))
    assert answer.status == 200 and answer.body == data


# --- JSON of any depth ---------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


CF_JSON_ROUTES = [f"{CF}/ai/finetunes", f"{CF}/ai/run/{MODEL}"]
COHERE_JSON_ROUTES = [
    ("POST", "/v1/finetuning/finetuned-models"),
    ("PATCH", "/v1/finetuning/finetuned-models/no-such-model"),
]
DEEP = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000]


@pytest.mark.parametrize("body", DEEP, ids=["arrays", "objects"])
@pytest.mark.parametrize("path", CF_JSON_ROUTES)
def test_cloudflare_refuses_json_nested_too_deep(sb: SandboxServer, path: str, body: bytes) -> None:
    answer = send(sb, "POST", path, body)
    assert answer.status == 400, answer.body
    [error] = answer.json()["errors"]  # type: ignore[index]
    assert error["code"] == 3010 and f"deeper than {MAX_JSON_DEPTH}" in error["message"]


@pytest.mark.parametrize("body", DEEP, ids=["arrays", "objects"])
@pytest.mark.parametrize(("method", "path"), COHERE_JSON_ROUTES)
def test_cohere_refuses_json_nested_too_deep(
    sb: SandboxServer, method: str, path: str, body: bytes
) -> None:
    answer = send(sb, method, path, body)
    if path.endswith("no-such-model"):  # the model is looked up first
        assert answer.status in (400, 404), answer.body
        return
    assert answer.status == 400, answer.body
    assert answer.json() == {
        "message": f"invalid request: body is nested deeper than {MAX_JSON_DEPTH} levels"
    }


def create_with(extra: bytes) -> bytes:
    """A create body whose field `x` holds `extra`: one level deeper than `extra` itself."""
    return b'{"model": "' + MODEL.encode() + b'", "name": "deep", "x": ' + extra + b"}"


def test_json_at_the_depth_limit_is_read(sb: SandboxServer) -> None:
    answer = send(sb, "POST", f"{CF}/ai/finetunes", create_with(nested(MAX_JSON_DEPTH)))
    assert answer.status == 400, answer.body  # one level too many
    answer = send(sb, "POST", f"{CF}/ai/finetunes", create_with(nested(MAX_JSON_DEPTH - 1)))
    assert answer.status == 200, answer.body
    # brackets inside strings are text, not depth
    text = json.dumps({"model": MODEL, "name": "brackets", "description": '[{"\\' * 5000})
    assert send(sb, "POST", f"{CF}/ai/finetunes", text.encode()).status == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"prompt": "hi", "seed": ' + b"9" * 4000 + b"}", 400, 5006),  # 4000 digits
        (b'{"prompt": "hi", "max_tokens": ' + LONG.encode() + b"}", 400, 6007),
        (b'{"prompt": "hi", "temperature": NaN}', 400, 6007),  # NaN is not JSON
        (b'{"prompt": "hi", "top_p": -Infinity}', 400, 6007),
        (b'{"prompt": "\\ud800 lone"}', 400, 6007),  # a lone surrogate is no text
    ],
    ids=["4000-digit-seed", "5000-digit-int", "nan", "infinity", "lone-surrogate"],
)
def test_cloudflare_run_numbers_and_text_never_500(
    sb: SandboxServer, body: bytes, status: int, code: int
) -> None:
    answer = send(sb, "POST", f"{CF}/ai/run/{MODEL}", body)
    assert answer.status == status, answer.body
    [error] = answer.json()["errors"]  # type: ignore[index]
    assert error["code"] == code


def test_a_name_that_is_no_text_is_400_not_500(sb: SandboxServer) -> None:
    body = b'{"model": "' + MODEL.encode() + b'", "name": "a\\udc80b"}'
    answer = send(sb, "POST", f"{CF}/ai/finetunes", body)
    assert answer.status == 400, answer.body
    assert answer.json()["errors"][0]["code"] == 6007  # type: ignore[index]


def test_a_cohere_dataset_line_nested_too_deep_fails_validation(sb: SandboxServer) -> None:
    line = b'{"messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="data"; filename="d.jsonl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + line
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = send(
        sb,
        "POST",
        "/v1/datasets?name=deep&type=chat-finetune-input",
        body,
        headers=(f"Content-Type: multipart/form-data; boundary={boundary}",),
    )
    assert answer.status == 200, answer.body
    dataset = sb.cohere_store.get_dataset(answer.json()["id"])  # type: ignore[index]
    assert dataset is not None
    assert dataset.verdict.error == "line 1 of data: nested deeper than 64 levels"


# --- names with control characters ---------------------------------------------------------

CONTROL_NAMES = ["a\x00b", "a\nb", "a\rb", "a\tb", "bot\x1b[2J", "a\x7fb", "a\x85b"]


@pytest.mark.parametrize("name", CONTROL_NAMES)
def test_cloudflare_refuses_a_finetune_name_with_a_control_character(
    sb: SandboxServer, name: str
) -> None:
    body = json.dumps({"model": MODEL, "name": name}).encode()
    answer = send(sb, "POST", f"{CF}/ai/finetunes", body)
    assert answer.status == 400, answer.body
    [error] = answer.json()["errors"]  # type: ignore[index]
    assert error["code"] == 3010
    assert error["message"].startswith("Field 'name' must not contain control characters")
    assert sb.store.list_finetunes(ACCOUNT) == []


def test_cloudflare_takes_names_in_any_script(sb: SandboxServer) -> None:
    for name in ("naïve-бот", "模型 v2", "bot\u202e"):  # bidi controls are text, shown escaped
        body = json.dumps({"model": MODEL, "name": name}).encode()
        assert send(sb, "POST", f"{CF}/ai/finetunes", body).status == 200


@pytest.mark.parametrize("name", ["a\x00b", "a\nb", "bot\x1b[2J"])
def test_cohere_refuses_names_with_a_control_character(sb: SandboxServer, name: str) -> None:
    settings = {
        "base_model": {"base_type": "BASE_TYPE_CHAT"},
        "dataset_id": "no-such-dataset",
    }
    body = json.dumps({"name": name, "settings": settings}).encode()
    for method, path in COHERE_JSON_ROUTES:
        answer = send(sb, method, path, body)
        if path.endswith("no-such-model"):
            assert answer.status == 404  # the model is looked up first
            continue
        assert answer.status == 400, answer.body
        assert answer.json() == {
            "message": "invalid request: name must not contain control characters"
            f" (found U+{ord(next(c for c in name if c < ' ')):04X})"
        }


@pytest.mark.parametrize("name", ["a%00b", "a%0Ab", "bot%1B%5B2J"])
def test_cohere_refuses_a_dataset_name_with_a_control_character(
    sb: SandboxServer, name: str
) -> None:
    answer = send(sb, "POST", f"/v1/datasets?name={name}&type=chat-finetune-input")
    assert answer.status == 400, answer.body
    message = answer.json()["message"]  # type: ignore[index]
    assert message.startswith("invalid request: name must not contain control characters")
    assert sb.cohere_store.list_datasets() == []


@pytest.mark.parametrize("name", ["a\nb.json", "bad\x1b[2J.json", "tab\there.json"])
def test_hf_push_refuses_a_file_name_with_a_control_character(
    cli: Cli, tmp_path: Path, name: str
) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / CONFIG).write_text("{}")
    (folder / name).write_text("{}")  # (NUL cannot be in a file name at all)
    result = cli("sandbox", "hf-push", REPO, folder, "--data", tmp_path / "d")
    assert result.exit_code == 1
    assert "has a control character in its name" in result.stderr
    assert "\x1b" not in result.stderr and "\n" not in result.stderr.rstrip("\n")
    assert HubStore(tmp_path / "d").repo(REPO) is None


def test_a_file_name_with_quotes_reaches_content_disposition_quoted(
    sb: SandboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / 'say "hi"; x=é.json').write_text("{}")
    HubStore(sb.data_dir).push(REPO, folder)
    answer = send(sb, "GET", f"/hf/{REPO}/resolve/main/say%20%22hi%22%3B%20x%3D%C3%A9.json")
    assert answer.status == 200, answer.body
    assert_clean_headers(answer)
    assert answer.header("Content-Disposition") == (
        'attachment; filename="say _hi_; x=_.json";'
        " filename*=UTF-8''say%20%22hi%22%3B%20x%3D%C3%A9.json"
    )


# --- beyond the listed defects -------------------------------------------------------------


def multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    body = (
        (
            f'--b0undary\r\nContent-Disposition: form-data; name="data"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + b"\r\n--b0undary--\r\n"
    )
    return body, "Content-Type: multipart/form-data; boundary=b0undary"


def test_cohere_refuses_a_dataset_file_name_with_a_control_character(sb: SandboxServer) -> None:
    chat = (
        b'{"messages": [{"role": "User", "content": "hi"}, {"role": "Chatbot", "content": "yo"}]}\n'
    )
    body, content_type = multipart("train\x1b[2J.jsonl", chat * 3)
    answer = send(
        sb, "POST", "/v1/datasets?name=ok&type=chat-finetune-input", body, (content_type,)
    )
    assert answer.status == 400, answer.body
    assert answer.json() == {
        "message": "invalid request: file name must not contain control characters (found U+001B)"
    }
    assert sb.cohere_store.list_datasets() == []


@pytest.mark.parametrize(
    "path",
    ["/v1/datasets?name=ok&type=chat-finetune-input", f"{CF}/ai/finetunes/x/finetune-assets"],
)
def test_a_declared_length_of_any_size_is_413(sb: SandboxServer, path: str) -> None:
    _, content_type = multipart("d.jsonl", b"")
    request_line = f"POST {path} HTTP/1.1"
    raw = (
        f"{request_line}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {DEFAULT_TOKEN}\r\n"
        f"{content_type}\r\nContent-Length: {LONG}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", sb.port), timeout=30) as conn:
        conn.sendall(raw)
        head = b""
        while not head.endswith(b"}") and (chunk := conn.recv(1 << 16)):
            head += chunk  # the JSON answer, then werkzeug waits for the body it was promised
    status = int(head.split()[1])
    if path.startswith(CF):  # the finetune is looked up first
        assert status == 404, head
    else:
        assert status == 413, head
        assert b"dataset is too large" in head


def test_a_hub_repo_file_that_is_a_fifo_is_not_waited_on(sb: SandboxServer) -> None:
    repos = sb.data_dir / "hub" / "repos" / "acme"
    repos.mkdir(parents=True)
    os.mkfifo(repos / "stuck.json")  # a state file no writer will ever fill
    answer = send(sb, "GET", "/hf/api/models/acme/stuck", timeout=10)  # a user: 404
    assert answer.status == 404, answer.body
    assert answer.header("X-Error-Code") == "RepoNotFound"


@pytest.mark.parametrize(
    "body",
    [b'"' + b'\\"' * (1 << 14), b'{"a": "' + b"\\" * (1 << 15), b'"\\' * (1 << 14)],
    ids=["escaped-quotes", "backslashes", "quote-backslash"],
)
def test_a_body_that_never_closes_its_string_is_read_in_linear_time(
    sb: SandboxServer, body: bytes
) -> None:
    # The depth count skips strings; a string whose every quote is escaped once cost it
    # quadratic time (32 KiB: 19 s; 1 MiB: days) and held the request that long.
    started = time.monotonic()
    answer = send(sb, "POST", f"{CF}/ai/finetunes", body, timeout=10)
    assert answer.status == 400, answer.body
    assert answer.json()["errors"][0]["code"] == 6007  # type: ignore[index]
    assert time.monotonic() - started < 5
    started = time.monotonic()
    with pytest.raises(NotJson):
        parse_json(body * 32)  # a MiB and more
    assert time.monotonic() - started < 5
