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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import CANARY_TOKEN, Cli
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

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


@pytest.fixture
def hostile(cf_env: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lying]:
    """The double in front of cf_env's sandbox, named by CLOUDFLARE_API_BASE_URL."""
    double = Lying(cf_env.url)
    server = make_server("127.0.0.1", 0, double, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", f"http://127.0.0.1:{server.port}/client/v4")
    monkeypatch.setenv("RECONCILER_HTTP_BACKOFF", "0")
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


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
