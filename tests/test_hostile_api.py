"""reconciler against a Cloudflare API that lies.

The double is a werkzeug app on 127.0.0.1 in front of the faithful sandbox: every call is
forwarded and answered honestly unless a test scripts a lie for it (a failure envelope with
HTTP 200, an id with a line break, the token echoed back, a page that never ends). The
commands are run as a user runs them, through the CLI, with CLOUDFLARE_API_BASE_URL naming
the double; what they print, exit with and leave in the lockfile is what is checked.
"""

from __future__ import annotations

import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import CANARY_TOKEN, Cli
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from reconciler.providers import http
from reconciler.sandbox.server import SandboxServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

Honest = Callable[[], tuple[int, Any]]  # the sandbox's own answer: (status, JSON body)
# (request, the honest answer) -> a lie (a Response, or (status, JSON body)), or None: honest
Lie = Callable[[Request, Honest], "Response | tuple[int, Any] | None"]

LIST = r"/accounts/[^/]+/ai/finetunes"
PUBLIC = r"/accounts/[^/]+/ai/finetunes/public"
ASSETS = r"/accounts/[^/]+/ai/finetunes/[^/]+/finetune-assets"


def envelope(result: Any, *, success: bool = True, errors: Iterable[Any] = ()) -> dict[str, Any]:
    return {"success": success, "errors": list(errors), "messages": [], "result": result}


class Lying:
    """A Cloudflare API that forwards to the sandbox at `upstream` except where it lies."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.lies: list[tuple[str, re.Pattern[str], Lie]] = []
        self.seen: list[tuple[str, str]] = []

    def lie(self, method: str, path: str, answer: Lie) -> None:
        """Answer `method` on a path that fully matches `path` (after /client/v4) with `answer`;
        the latest lie for a call wins."""
        self.lies.insert(0, (method, re.compile(path), answer))

    def truth(self) -> None:
        self.lies.clear()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        data = request.get_data()
        self.seen.append((request.method, request.full_path))

        def honest() -> tuple[int, Any]:
            forwarded = httpx.request(
                request.method,
                self.upstream + request.full_path.rstrip("?"),
                headers={
                    k: v
                    for k, v in request.headers.items()
                    if k.lower() in ("authorization", "content-type")
                },
                content=data,
                timeout=30,
            )
            return forwarded.status_code, forwarded.json()

        answer: Response | tuple[int, Any] | None = None
        tail = request.path.removeprefix("/client/v4")
        for method, pattern, lie in self.lies:
            if method == request.method and pattern.fullmatch(tail):
                answer = lie(request, honest)
                if answer is not None:
                    break
        if answer is None:
            answer = honest()
        if isinstance(answer, tuple):
            status, body = answer
            answer = Response(json.dumps(body), status, content_type="application/json")
        return answer(environ, start_response)


@contextmanager
def lying(upstream: str) -> Iterator[tuple[Lying, str]]:
    """A Lying double in front of `upstream`, on 127.0.0.1: the double and its URL."""
    double = Lying(upstream)
    server = make_server("127.0.0.1", 0, double, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield double, f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def hostile(cf_env: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lying]:
    """The double in front of cf_env's sandbox, named by CLOUDFLARE_API_BASE_URL."""
    with lying(cf_env.url) as (double, url):
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", f"{url}/client/v4")
        monkeypatch.setenv("RECONCILER_HTTP_BACKOFF", "0")
        yield double


def said(answer: tuple[int, Any] | Response) -> Lie:
    """A lie that answers the same whatever was asked."""
    return lambda request, honest: answer


def changed(edit: Callable[[Any], None]) -> Lie:
    """A lie told about an honest answer: the sandbox acts, `edit` changes its result."""

    def lie(request: Request, honest: Honest) -> tuple[int, Any]:
        status, body = honest()
        edit(body["result"])
        return status, body

    return lie


def applied(cli: Cli, project: Path) -> bytes:
    """The quick start applied honestly; the lockfile's bytes."""
    result = cli("apply", "-c", project, "--auto-approve")
    assert result.exit_code == 0, result.output
    return project.with_suffix(".lock").read_bytes()


def never_shown(result: Any) -> None:
    """The token in no case and no output (the cli fixture checks the exact spelling)."""
    assert CANARY_TOKEN.lower() not in (result.stdout + result.stderr).lower()


NOT_FOUND = {"code": 7003, "message": "Could not route to /accounts, perhaps your object..."}


# M6: an envelope that says it failed is an error, whatever its status says
@pytest.mark.parametrize(
    "command",
    [("drift",), ("plan",), ("apply", "--refresh-only", "--auto-approve")],
    ids=["drift", "plan", "refresh-only"],
)
def test_a_list_answered_200_with_success_false_fails_the_command(
    cli: Cli, hostile: Lying, project: Path, command: tuple[str, ...]
) -> None:
    lock = applied(cli, project)
    hostile.lie("GET", LIST, said((200, envelope([], success=False, errors=[NOT_FOUND]))))
    result = cli(*command, "-c", project)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == (
        "Error: list finetunes of account 0123456789abcdef0123456789abcdef: the API answered "
        "HTTP 200 with success: false: Could not route to /accounts, perhaps your object... "
        "[code: 7003]"
    )
    assert "gone" not in result.stdout and "+ create" not in result.stdout
    assert project.with_suffix(".lock").read_bytes() == lock


# M7: what the API names is checked by the lock schema's patterns before it is used
def test_a_created_id_with_a_line_break_is_refused_and_the_next_run_works(
    cli: Cli, hostile: Lying, project: Path
) -> None:
    hostile.lie("POST", LIST, changed(lambda made: made.update(id="abc\ndef")))
    result = cli("apply", "-c", project, "--auto-approve")
    assert result.exit_code == 1, result.output
    assert (
        'create finetune faq-bot-v1: the answer names the finetune id "abc\\ndef", which is '
        "not one line of printable text (what the lockfile takes); refused, nothing was recorded"
    ) in result.output
    lock = project.with_suffix(".lock")
    assert json.loads(lock.read_text())["finetunes"] == {}  # journaled, not recorded
    assert "abc\\ndef" not in lock.read_text()
    hostile.truth()
    again = cli("apply", "-c", project, "--auto-approve")
    assert again.exit_code == 0, again.output
    recorded = json.loads(lock.read_text())["finetunes"]
    assert sorted(recorded) == ["faq-bot-v1", "support-bot-v3"]
    assert cli("plan", "-c", project, "--detailed-exitcode").exit_code == 0


def raw(text: bytes, status: int = 200, **headers: str) -> Response:
    return Response(text, status, content_type="application/json", headers=headers)


def endless() -> Iterator[bytes]:
    yield b'{"success": true, "errors": [], "messages": [], "result": [{"name": "'
    while True:
        yield b"x" * 1024 * 1024


def bomb(size: int) -> bytes:
    """gzip of `size` zero bytes inside a JSON string: a few hundred kB on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b'{"success": true, "result": "')]
    block = b"0" * 1024 * 1024
    parts += [packer.compress(block) for _ in range(size // len(block))]
    parts.append(packer.compress(b'"}') + packer.flush())
    return b"".join(parts)


# answers read strictly and within bounds: no body fills the memory, none enters unread
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            lambda: Response(endless(), 200, content_type="application/json"),
            "answered more than 67,108,864 bytes, far more than any answer of the API",
        ),
        (
            lambda: raw(bomb(80 * 1024 * 1024), **{"Content-Encoding": "gzip"}),
            "answered more than 67,108,864 bytes, far more than any answer of the API",
        ),
        (
            lambda: raw(b"\x1f\x8b not gzip at all", **{"Content-Encoding": "gzip"}),
            "answered with a body that cannot be decoded as its Content-Encoding says",
        ),
        (
            lambda: raw(b'{"success": true, "result": [], "result": [{"id": "x"}]}'),
            "answered HTTP 200 with application/json, not the API's JSON",
        ),
        (
            lambda: raw(b'{"success": true, "result": [NaN]}'),
            "answered HTTP 200 with application/json, not the API's JSON",
        ),
    ],
    ids=["endless", "gzip-bomb", "bad-gzip", "key-twice", "nan"],
)
def test_an_answer_too_large_or_not_strict_json_fails_the_read(
    cli: Cli, hostile: Lying, project: Path, answer: Callable[[], Response], expected: str
) -> None:
    lock = applied(cli, project)
    body = answer()
    hostile.lie("GET", LIST, said(body))
    result = cli("plan", "-c", project)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: list finetunes of account "), result.stderr
    assert expected in result.stderr
    assert project.with_suffix(".lock").read_bytes() == lock


def test_an_answer_that_trickles_is_given_up(
    cli: Cli, hostile: Lying, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "MAX_ANSWER_SECONDS", 0.5)  # 300 s in earnest

    def trickle() -> Iterator[bytes]:
        yield b'{"success": true, "result": ['
        for _ in range(100):
            time.sleep(0.1)
            yield b" "

    hostile.lie("GET", LIST, said(Response(trickle(), 200, content_type="application/json")))
    started = time.monotonic()
    result = cli("drift", "-c", project)
    assert result.exit_code == 1, result.output
    assert "took more than 0.5s to send its answer" in result.stderr
    assert time.monotonic() - started < 5


# L8: the token stays hidden however the API gives it back
def cased(token: str) -> list[str]:
    return [token.upper(), token.title(), token.swapcase(), token]


def test_a_token_echoed_in_another_case_is_redacted(
    cli: Cli, hostile: Lying, project: Path
) -> None:
    errors = [{"code": 10000, "message": f"token {t} is not valid"} for t in cased(CANARY_TOKEN)]
    hostile.lie("POST", LIST, said((400, envelope(None, success=False, errors=errors))))
    result = cli("-vv", "apply", "-c", project, "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "token *** is not valid" in result.output
    never_shown(result)


def test_a_token_given_back_as_a_name_or_a_description_is_redacted(
    cli: Cli, hostile: Lying, project: Path
) -> None:
    applied(cli, project)

    def echoed(request: Request, honest: Honest) -> Response:
        status, body = honest()
        for n, token in enumerate(cased(CANARY_TOKEN)):
            body["result"].append(
                {
                    "id": f"00000000-0000-4000-8000-00000000000{n}",
                    "name": token if n == 0 else f"echo-{n}",  # (a name once: names are unique)
                    "model": "@cf/google/gemma-2b-it-lora",
                    "description": f"made with {token}",
                    "created_at": "2026-01-01T00:00:00Z",
                    "modified_at": "2026-01-01T00:00:00Z",
                }
            )
        text = json.dumps(body)  # and once spelt with JSON escapes, which no search of bytes sees
        text = text.replace(f"with {CANARY_TOKEN}", "with " + CANARY_TOKEN.replace("c", "\\u0063"))
        return raw(text.encode(), status)

    hostile.lie("GET", LIST, echoed)
    for command in (("list",), ("drift",), ("plan",), ("list", "--format", "json")):
        result = cli("-vv", *command, "-c", project)
        assert "***" in result.stdout, (command, result.output)
        never_shown(result)


# M6, every call: an envelope that says it failed is never read as a success
REFUSED = envelope(None, success=False, errors=[{"code": 1000, "message": "nope"}])


@pytest.mark.parametrize(
    ("method", "path", "command", "what"),
    [
        ("POST", LIST, ("apply", "--auto-approve"), "create finetune support-bot-v3"),
        ("POST", ASSETS, ("apply", "--auto-approve"), "upload adapter_config.json to finetune"),
        ("GET", PUBLIC, ("public",), "list public finetunes (offset 0)"),
        ("POST", r"/accounts/[^/]+/ai/run/.+", ("test",), "run @cf/"),
    ],
    ids=["create", "upload", "public", "run"],
)
def test_every_call_answered_200_with_success_false_fails(
    cli: Cli,
    hostile: Lying,
    project: Path,
    method: str,
    path: str,
    command: tuple[str, ...],
    what: str,
) -> None:
    if command == ("test",):
        applied(cli, project)
    hostile.lie(method, path, said((200, REFUSED)))
    result = cli(*command, "-c", project)
    assert result.exit_code != 0, result.output
    assert what in result.output
    assert "the API answered HTTP 200 with success: false: nope [code: 1000]" in result.output
    if path == ASSETS:  # the finetune is recorded, its assets are not: the next run sends them
        recorded = json.loads(project.with_suffix(".lock").read_text())["finetunes"]
        assert all(entry["assets"] == {} for entry in recorded.values()), recorded
        hostile.truth()
        assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
        assert cli("plan", "-c", project, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    "body",
    [{"success": "true", "result": []}, {"result": []}, {"success": 1, "result": []}],
    ids=["string", "absent", "number"],
)
def test_only_success_true_is_a_success(
    cli: Cli, hostile: Lying, project: Path, body: dict[str, Any]
) -> None:
    lock = applied(cli, project)
    hostile.lie("GET", LIST, said((200, body)))
    result = cli("drift", "-c", project)
    assert result.exit_code == 1, result.output
    assert "list finetunes of account 0123456789abcdef0123456789abcdef: the API answered " in (
        result.stderr
    )
    assert project.with_suffix(".lock").read_bytes() == lock


# M7, more shapes: nothing the lockfile would refuse is recorded, whatever the call
def nan_description(request: Request, honest: Honest) -> Response:
    status, body = honest()
    body["result"]["description"] = "@NAN@"
    return raw(json.dumps(body).replace('"@NAN@"', "NaN").encode(), status)


@pytest.mark.parametrize(
    ("lie", "expected"),
    [
        (
            changed(lambda made: made.update(description=5)),
            "create finetune faq-bot-v1: the answer's description is a number, not a string",
        ),
        (nan_description, "answered HTTP 200 with application/json, not the API's JSON"),
        (
            changed(lambda made: made.update(id="x" * 2000)),
            "create finetune faq-bot-v1: the answer names the finetune id "
            f'"{"x" * 80}"…, which is longer than 1024 characters (2000)',
        ),
        (
            changed(lambda made: made.update(id="\x1b]52;c;aGk=\x07")),
            'the answer names the finetune id "\\u001b]52;c;aGk=\\u0007", which is not one line',
        ),
        (
            changed(lambda made: made.update(id=["a"])),
            "create finetune faq-bot-v1: the answer's finetune id is a list, not a string",
        ),
    ],
    ids=["description-number", "description-nan", "id-too-long", "id-escape", "id-list"],
)
def test_a_create_answer_the_lockfile_would_refuse_records_nothing(
    cli: Cli, hostile: Lying, project: Path, lie: Lie, expected: str
) -> None:
    hostile.lie("POST", LIST, lie)
    result = cli("apply", "-c", project, "--auto-approve")
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "\x1b" not in result.output
    lock = project.with_suffix(".lock")
    assert json.loads(lock.read_text())["finetunes"] == {}
    hostile.truth()
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    assert cli("plan", "-c", project, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            {"name": "evil\x1b[2J\nname"},
            'the answer names the finetune name "evil\\u001b[2J\\nname"',
        ),
        ({"id": ""}, 'the answer names the finetune id "", which is not one line'),
        ({"model": {"a": 1}}, "the answer's model is an object, not a string"),
        ({"created_at": 7}, "the answer's created at is a number, not a string"),
    ],
    ids=["name-escape", "id-empty", "model-object", "created-at-number"],
)
def test_a_listed_finetune_the_lockfile_would_refuse_fails_the_read(
    cli: Cli, hostile: Lying, project: Path, item: dict[str, Any], expected: str
) -> None:
    lock = applied(cli, project)
    stranger = {
        "id": "00000000-0000-4000-8000-000000000001",
        "name": "stranger",
        "model": "@cf/google/gemma-2b-it-lora",
        "created_at": "2026-01-01T00:00:00Z",
        "modified_at": "2026-01-01T00:00:00Z",
    }
    hostile.lie("GET", LIST, changed(lambda listed: listed.append({**stranger, **item})))
    for command in (("plan",), ("drift",), ("apply", "--refresh-only", "--auto-approve")):
        result = cli(*command, "-c", project)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(
            "Error: list finetunes of account 0123456789abcdef0123456789abcdef: "
        ), result.stderr
        assert expected in result.stderr
        assert "\x1b" not in result.output
    assert project.with_suffix(".lock").read_bytes() == lock


@pytest.mark.parametrize(
    "edit",
    [
        lambda listed: listed.append(dict(listed[0])),
        lambda listed: listed.append({**listed[0], "name": "another-name"}),
    ],
    ids=["same-entry", "another-name"],
)
def test_a_list_naming_one_finetune_id_twice_fails_the_read(
    cli: Cli, hostile: Lying, project: Path, edit: Callable[[Any], None]
) -> None:
    lock = applied(cli, project)
    hostile.lie("GET", LIST, changed(edit))
    for command in (
        ("plan",),
        ("drift",),
        ("list",),
        ("apply", "--refresh-only", "--auto-approve"),
    ):
        result = cli(*command, "-c", project)
        assert result.exit_code == 1, (command, result.output)
        assert "the answer lists the finetune id " in result.stderr
    assert project.with_suffix(".lock").read_bytes() == lock


@pytest.mark.parametrize(
    "value",
    ["6f1c-a", "support-bot", "a b", "é", "x" * 1024, "", "a\n", "\nb", "a\rb", "a\x00", "a\x7f"],
)
def test_the_fast_identifier_rule_judges_as_the_lock_schema_does(value: str) -> None:
    """The list of a thousand finetunes is checked with a compiled form of the lock's `token`
    rule; it must refuse exactly what the schema's own validator refuses."""
    from reconciler.providers import checked

    assert checked._rule()(value) == checked._validator(checked.RULE).is_valid(value)
