"""reconciler against a file host that lies (adapters declared as files at URLs).

The double is a werkzeug app on 127.0.0.1 serving the quick start's adapter honestly to HEAD
and Range reads (what plan sends), and, to the whole-file GET of apply, whatever a test
scripts: a body that never ends, a gzip bomb, a trickle of one byte per half second, a
redirect to plain http on another host. The commands run through the CLI; what they print,
exit with, create and leave in the project's downloads folder is what is checked.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import QUICKSTART, Cli
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from reconciler.sandbox.server import SandboxServer
from reconciler.sources import url as url_source

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ADAPTER = QUICKSTART / "adapters" / "support-v3"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
Whole = Callable[[Request, bytes], Response]  # the request, the honest bytes -> the answer


def headed(length: int | str) -> Response:
    """A HEAD answer announcing `length` (werkzeug would say 0: no body is sent)."""
    response = Response(b"", 200)
    response.automatically_set_content_length = False
    response.headers["Content-Length"] = str(length)
    return response


class LyingHost:
    """Files under /files/<name>: honest to HEAD and Range, `whole[name]` to a plain GET."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.whole: dict[str, Whole] = {}
        self.head: dict[str, Whole] = {}
        self.ranged: dict[str, Whole] = {}
        self.seen: list[tuple[str, str, str | None]] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        name = request.path.rsplit("/", 1)[-1]
        self.seen.append((request.method, request.path, request.headers.get("Range")))
        data = self.files.get(name)
        if data is None:
            return Response("no", 404)(environ, start_response)
        asked = request.headers.get("Range")
        if request.method == "HEAD" and name in self.head:
            return self.head[name](request, data)(environ, start_response)
        if request.method == "HEAD":
            return headed(len(data))(environ, start_response)
        if asked and name in self.ranged:
            return self.ranged[name](request, data)(environ, start_response)
        if asked:
            first, last = asked.removeprefix("bytes=").split("-")
            part = data[int(first) : int(last) + 1]
            end = int(first) + len(part) - 1
            headers = {"Content-Range": f"bytes {first}-{end}/{len(data)}"}
            return Response(part, 206, headers)(environ, start_response)
        lie = self.whole.get(name)
        answer = lie(request, data) if lie else Response(data, 200)
        return answer(environ, start_response)


@pytest.fixture
def host(cf_env: SandboxServer) -> Iterator[tuple[LyingHost, str]]:
    double = LyingHost({n: (ADAPTER / n).read_bytes() for n in (CONFIG, WEIGHTS)})
    server = make_server("127.0.0.1", 0, double, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield double, f"http://127.0.0.1:{server.port}/files"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def write_config(folder: Path, base: str, files: dict[str, bytes] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = files or {n: (ADAPTER / n).read_bytes() for n in (CONFIG, WEIGHTS)}
    lines = "".join(
        f"          {name}:\n            url: {base}/{name}\n"
        f"            sha256: {hashlib.sha256(data).hexdigest()}\n"
        for name, data in files.items()
    )
    config = folder / "finetunes.yaml"
    config.write_text(
        "version: 1\n"
        "providers:\n  cloudflare:\n    account_id: ${CLOUDFLARE_ACCOUNT_ID}\n"
        "finetunes:\n"
        "  - name: support-bot\n"
        "    provider: cloudflare\n"
        f'    model: "{MODEL}"\n'
        f"    adapter:\n      files:\n{lines}"
    )
    return config


def creates(sandbox: SandboxServer) -> int:
    return len([c for c in sandbox.request_log if c[0] == "POST" and c[1].endswith("/finetunes")])


def downloads(config: Path) -> list[str]:
    folder = config.parent / ".reconciler" / "downloads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def refused(result: object, sandbox: SandboxServer) -> str:
    output = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert "Traceback" not in output and "internal error" not in output.lower()
    assert creates(sandbox) == 0
    return str(output)


def endless(request: Request, data: bytes) -> Response:
    def body() -> Iterator[bytes]:
        yield data
        while True:
            yield b"\0" * 65536

    return Response(body(), 200)


def test_m4_a_body_that_never_ends_stops_at_the_planned_size(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path
) -> None:
    double, base = host
    double.whole[WEIGHTS] = endless
    config = write_config(tmp_path / "p", base)
    started = time.monotonic()
    output = refused(cli("apply", "-c", config, "--auto-approve"), cf_env)
    assert time.monotonic() - started < 20
    size = len(double.files[WEIGHTS])
    assert f"more than the planned {size:,} bytes" in output
    assert WEIGHTS in output
    assert downloads(config) == [hashlib.sha256(double.files[CONFIG]).hexdigest()]


def test_m4_a_gzip_bomb_is_never_decoded(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path
) -> None:
    double, base = host
    bomb = zlib.compress(b"\0" * (64 << 20), 9)
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = gz.compress(b"\0" * (64 << 20)) + gz.flush()
    double.whole[WEIGHTS] = lambda request, data: Response(
        bomb, 200, {"Content-Encoding": "gzip", "Content-Length": str(len(bomb))}
    )
    config = write_config(tmp_path / "p", base)
    output = refused(cli("apply", "-c", config, "--auto-approve"), cf_env)
    assert "Content-Encoding: gzip" in output
    assert not [
        n for n in downloads(config) if n != hashlib.sha256(double.files[CONFIG]).hexdigest()
    ]
    # what apply asked for: the bytes as they are
    gets = [s for s in double.seen if s[0] == "GET" and s[1].endswith(WEIGHTS) and not s[2]]
    assert gets


def test_m4_a_trickle_meets_a_deadline_scaled_by_size(
    cli: Cli,
    host: tuple[LyingHost, str],
    cf_env: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    double, base = host

    def trickle(request: Request, data: bytes) -> Response:
        def body() -> Iterator[bytes]:
            for i in range(len(data)):
                time.sleep(0.5)
                yield data[i : i + 1]

        return Response(body(), 200, {"Content-Length": str(len(data))})

    double.whole[WEIGHTS] = trickle
    # the deadline is DEADLINE + size / MIN_RATE seconds; here 2 s for 2.5 kB, which a byte
    # per half second (1.3 kB in 11 min) cannot meet
    monkeypatch.setattr(url_source, "DEADLINE", 2.0, raising=False)
    config = write_config(tmp_path / "p", base)
    started = time.monotonic()
    output = refused(cli("apply", "-c", config, "--auto-approve"), cf_env)
    assert time.monotonic() - started < 15
    assert "too slowly" in output
    assert WEIGHTS in output


def test_m4_a_temp_file_left_by_a_kill_is_swept(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path
) -> None:
    double, base = host
    config = write_config(tmp_path / "p", base)
    folder = config.parent / ".reconciler" / "downloads"
    folder.mkdir(parents=True)
    weights = hashlib.sha256(double.files[WEIGHTS]).hexdigest()
    left = folder / f".{weights}.0badf00d.tmp"  # as atomic_file names it, torn by a kill
    left.write_bytes(b"\0" * 100_000)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert not left.exists()
    assert sorted(downloads(config)) == sorted(
        hashlib.sha256(d).hexdigest() for d in double.files.values()
    )


def redirect(to: str) -> Whole:
    return lambda request, data: Response(b"", 302, {"Location": to})


@pytest.mark.parametrize("where", ["apply", "plan"])
def test_l9_no_redirect_to_plain_http_on_another_host(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path, where: str
) -> None:
    double, base = host
    elsewhere = "http://example.invalid/adapter_model.safetensors"
    if where == "apply":
        double.whole[WEIGHTS] = redirect(elsewhere)
        result = cli("apply", "-c", write_config(tmp_path / "p", base), "--auto-approve")
    else:
        double.head[WEIGHTS] = lambda request, data: Response(b"", 302, {"Location": elsewhere})
        result = cli("plan", "-c", write_config(tmp_path / "p", base))
    output = refused(result, cf_env)
    assert "redirect to plain http://example.invalid" in output
    assert "ConnectError" not in output  # refused before a connection was tried


def test_l9_a_redirect_on_loopback_is_followed(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path
) -> None:
    double, base = host
    double.files["moved.safetensors"] = double.files[WEIGHTS]
    double.whole[WEIGHTS] = redirect(f"{base}/moved.safetensors")
    applied = cli("apply", "-c", write_config(tmp_path / "p", base), "--auto-approve")
    assert applied.exit_code == 0, applied.output


@pytest.mark.parametrize("total", [str(10**30), "\u00b2", "1" * 5000])
def test_a_size_that_is_not_a_count_of_bytes_is_refused(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path, total: str
) -> None:
    """HEAD refused, so the size comes from a one-byte Range read's Content-Range: a total
    of 10^30 bytes, a superscript two (str.isdigit() says yes, int() says no), 5,000 digits."""
    double, base = host
    double.head[WEIGHTS] = lambda request, data: Response(b"", 405)
    double.ranged[WEIGHTS] = lambda request, data: Response(
        data[:1], 206, {"Content-Range": f"bytes 0-0/{total}"}
    )
    planned = cli("plan", "-c", write_config(tmp_path / "p", base))
    output = refused(planned, cf_env)
    assert f"{WEIGHTS}: the server's size is not a count of bytes" in output


def test_l12_a_problem_names_the_file_after_one_slash(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path
) -> None:
    double, base = host
    no_rank = json.loads(double.files[CONFIG])
    del no_rank["r"]
    double.files[CONFIG] = json.dumps(no_rank).encode()
    config = write_config(tmp_path / "p", base, dict(double.files))
    output = refused(cli("plan", "-c", config), cf_env)
    assert f'{base}/{CONFIG}: has no "r"' in output
    assert "//adapter_config.json" not in output


def test_a_redirect_loop_is_cut(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path
) -> None:
    double, base = host
    double.whole[WEIGHTS] = redirect(f"{base}/{WEIGHTS}")
    output = refused(
        cli("apply", "-c", write_config(tmp_path / "p", base), "--auto-approve"), cf_env
    )
    assert "more than 10 redirects" in output


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/w", "//"])
def test_a_redirect_to_another_scheme_or_nowhere_is_refused(
    cli: Cli,
    host: tuple[LyingHost, str],
    cf_env: SandboxServer,
    tmp_path: Path,
    location: str,
) -> None:
    double, base = host
    double.whole[WEIGHTS] = redirect(location)
    output = refused(
        cli("apply", "-c", write_config(tmp_path / "p", base), "--auto-approve"), cf_env
    )
    assert "redirect" in output  # "//" is the same URL again: a loop


def test_an_encoding_with_escapes_is_shown_escaped(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path
) -> None:
    double, base = host
    double.whole[WEIGHTS] = lambda request, data: Response(
        data, 200, {"Content-Encoding": "\x1b]8;;http://x\x07br"}
    )
    output = refused(
        cli("apply", "-c", write_config(tmp_path / "p", base), "--auto-approve"), cf_env
    )
    assert "\x1b" not in output and "\x07" not in output
    assert "Content-Encoding" in output


@pytest.mark.parametrize("kept", [-5, True, "2576", 10**30])
def test_a_kept_size_that_is_not_a_count_is_asked_again(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path, kept: object
) -> None:
    """What was learnt of a URL is kept per sha256; a kept size edited to -5 or true is a
    miss, not a bound of -5 bytes on the download."""
    double, base = host
    config = write_config(tmp_path / "p", base)
    assert cli("plan", "-c", config).exit_code == 0
    weights = hashlib.sha256(double.files[WEIGHTS]).hexdigest()
    facts = config.parent / ".reconciler" / "sources" / "url" / f"{weights}.json"
    data = json.loads(facts.read_text())
    data["size"] = kept
    facts.write_text(json.dumps(data))
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert json.loads(facts.read_text())["size"] == len(double.files[WEIGHTS])


def test_a_problem_names_the_file_where_the_files_share_no_folder(
    cli: Cli, host: tuple[LyingHost, str], cf_env: SandboxServer, tmp_path: Path
) -> None:
    double, base = host
    no_rank = json.loads(double.files[CONFIG])
    del no_rank["r"]
    double.files[CONFIG] = json.dumps(no_rank).encode()
    config = write_config(tmp_path / "p", base, dict(double.files))
    config.write_text(config.read_text().replace(f"{base}/{WEIGHTS}", f"{base}/w/{WEIGHTS}"))
    output = refused(cli("plan", "-c", config), cf_env)
    assert f'adapter {base}/{CONFIG}: has no "r"' in output
