"""reconciler against a Hugging Face Hub that lies.

The double is a werkzeug app on 127.0.0.1: the sandbox's faithful Hub (HubApi over a HubStore
in the test's folder) answering every call, except where a test scripts a lie about its JSON
(a refs answer naming a commit `../../x`, an LFS sha256 holding an escape sequence, a size of
"abc"). HF_ENDPOINT names the double; the commands run as a user runs them, through the CLI,
and what they print, exit with and leave on disk is what is checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import QUICKSTART, Cli
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from reconciler.sandbox.hub.api import HubApi
from reconciler.sandbox.hub.store import HubStore
from reconciler.sandbox.server import SandboxServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

REPO = "acme/support-lora"
ADAPTER = QUICKSTART / "adapters" / "support-v3"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
REFS = rf"/hf/api/models/{REPO}/refs"
INFO = rf"/hf/api/models/{REPO}/revision/.+"

Edit = Callable[[Any], Any]  # the honest JSON body -> the lie (or None: edited in place)
Raw = Callable[["Request"], "Response | None"]  # a request -> a lie, or None: honest
Headers = list[tuple[str, str]]
LFS = rf"/hf/lfs/{REPO}/[0-9a-f]{{40}}/{WEIGHTS}"


class LyingHub:
    """The sandbox's Hub, except for the JSON answers a test edits."""

    def __init__(self, store: HubStore) -> None:
        self.honest = HubApi(store)
        self.lies: list[tuple[re.Pattern[str], Edit]] = []
        # path -> (method, the honest WSGI answer's status and headers) -> a Response of its own
        self.raw: list[tuple[re.Pattern[str], Raw]] = []
        self.header_lies: list[tuple[re.Pattern[str], Callable[[Headers], Headers]]] = []
        self.seen: list[str] = []

    def lie(self, path: str, edit: Edit) -> None:
        self.lies.insert(0, (re.compile(path), edit))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        self.seen.append(path)
        raw = next((r for p, r in self.raw if p.fullmatch(path)), None)
        answer = raw(Request(environ)) if raw else None
        if answer is not None:
            return answer(environ, start_response)
        edit = next((e for p, e in self.lies if p.fullmatch(path)), None)
        headed = next((h for p, h in self.header_lies if p.fullmatch(path)), None)
        if headed is not None:
            told = headed

            def lying(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
                return start_response(status, told(headers))

            return self.honest(environ, lying)
        if edit is None:
            return self.honest(environ, start_response)
        got: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            got["status"], got["headers"] = status, headers
            return lambda data: None

        body = json.loads(b"".join(self.honest(environ, capture)))
        changed = edit(body)
        status = got["status"]
        if isinstance(changed, tuple):  # (HTTP status, body): an answer of its own
            status, changed = f"{changed[0]} Lie", changed[1]
        payload = json.dumps(body if changed is None else changed).encode()
        headers = [(k, v) for k, v in got["headers"] if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(payload)))])
        return [payload]


@pytest.fixture
def hub(
    cf_env: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[LyingHub]:
    store = HubStore(tmp_path / "hub-data")
    double = LyingHub(store)
    server = make_server("127.0.0.1", 0, double, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.port}/hf")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "")
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def push(hub: LyingHub, folder: Path = ADAPTER, tag: str = "v1") -> str:
    return hub.honest.store.push(REPO, folder, tag=tag)


def write_config(folder: Path, revision: str = "v1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "finetunes.yaml"
    config.write_text(
        "version: 1\n"
        "providers:\n  cloudflare:\n    account_id: ${CLOUDFLARE_ACCOUNT_ID}\n"
        "finetunes:\n"
        "  - name: support-bot\n"
        "    provider: cloudflare\n"
        f'    model: "{MODEL}"\n'
        f"    adapter:\n      hf: {REPO}\n      revision: {revision}\n"
    )
    return config


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


def no_traceback(output: str) -> None:
    assert "Traceback" not in output
    assert "internal error" not in output.lower()


def siblings(edit: Callable[[dict[str, Any]], None]) -> Edit:
    """A lie about the model info's files: `edit` changes each sibling in place."""

    def lie(body: Any) -> None:
        for s in body["siblings"]:
            edit(s)

    return lie


def refs_naming(commit: Any) -> Edit:
    def lie(body: Any) -> None:
        for ref in body["tags"] + body["branches"]:
            ref["targetCommit"] = commit

    return lie


@pytest.mark.parametrize(
    "commit",
    ["../../../../escaped", "/tmp/reconciler-h1-absolute", "g" * 40, "A" * 40, "a" * 39, 7, None],
)
def test_h1_a_refs_answer_that_is_not_a_commit_is_refused_before_it_names_a_path(
    cli: Cli, hub: LyingHub, tmp_path: Path, commit: Any
) -> None:
    real = push(hub)
    project = tmp_path / "project"
    config = write_config(project)
    hub.lie(REFS, refs_naming(commit))
    # and the model info answers for whatever is asked, naming the lie as its commit
    info = httpx.get(f"{os.environ['HF_ENDPOINT']}/api/models/{REPO}/revision/{real}?blobs=true")
    hub.lie(INFO, lambda body: (200, {**info.json(), "sha": commit}))
    before = files_under(tmp_path.parent)
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "not a commit (40 hex digits)" in planned.stderr
    assert "hf://acme/support-lora@v1" in planned.stderr
    outside = {p for p in files_under(tmp_path.parent) - before if project not in p.parents}
    assert not outside  # nothing written outside the project: no `escaped.json`, no folder
    assert not Path("/tmp/reconciler-h1-absolute.json").exists()
    sources = project / ".reconciler" / "sources"
    stray = [p for p in files_under(sources) if p.is_file() and sources / "hf" not in p.parents]
    assert not stray  # before: `.reconciler/sources/escaped.json`


def test_h1_a_model_info_naming_another_commit_is_refused(
    cli: Cli, hub: LyingHub, tmp_path: Path
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    hub.lie(INFO, lambda body: body.update(sha="../x"))
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1
    no_traceback(planned.output)
    assert "the Hub answered for commit '../x'" in planned.stderr


@pytest.mark.parametrize(
    "sha256",
    ["\x1b]52;c;cm0gLXJmIH4K\x07" + "a" * 50, "zz" * 32, "A" * 64, "a" * 63, 12, ["a" * 64]],
)
def test_m5_an_lfs_sha256_that_is_not_hex_is_refused(
    cli: Cli, hub: LyingHub, tmp_path: Path, sha256: Any
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")

    def lie(s: dict[str, Any]) -> None:
        if s.get("lfs"):
            s["lfs"]["sha256"] = sha256

    hub.lie(INFO, siblings(lie))
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "\x1b" not in planned.output
    assert f"{WEIGHTS}: the Hub's sha256 is not 64 hex digits" in planned.stderr


@pytest.mark.parametrize("size", ["abc", [1], -1, 10**30, True, 1.5, None])
def test_l6_a_sibling_size_that_is_not_a_count_of_bytes_is_refused(
    cli: Cli, hub: LyingHub, tmp_path: Path, size: Any
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    hub.lie(INFO, siblings(lambda s: s.update(size=size)))
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "the Hub's size is not a count of bytes" in planned.stderr or (
        size is None and "the Hub gave no size" in planned.stderr
    )


@pytest.mark.parametrize("blob_id", ["../x", "\x1b[31m", "f" * 39, 5])
def test_a_blob_id_that_is_not_a_git_sha1_is_refused(
    cli: Cli, hub: LyingHub, tmp_path: Path, blob_id: Any
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    hub.lie(INFO, siblings(lambda s: s.update(blobId=blob_id)))
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "the Hub's blobId is not a git sha1" in planned.stderr


def test_a_sibling_name_that_leaves_the_repo_is_refused(
    cli: Cli, hub: LyingHub, tmp_path: Path
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    hub.lie(INFO, siblings(lambda s: s.update(rfilename="../" + s["rfilename"])))
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "is not a file name in the repo" in planned.stderr


def plant(cache: Path, commit: str, name: str, data: bytes) -> Path:
    snapshot = cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / name).write_bytes(data)
    return snapshot / name


def test_m1_a_config_planted_in_the_hf_cache_is_not_trusted(
    cli: Cli, hub: LyingHub, cf_env: SandboxServer, tmp_path: Path
) -> None:
    """Another project (or a hostile HF_ENDPOINT) left adapter_config.json in the shared HF
    cache under the real commit, same size, other bytes: they are checked against the Hub's
    blobId, and the Hub's own bytes are what is planned and uploaded."""
    commit = push(hub)
    honest = (ADAPTER / CONFIG).read_bytes()
    tampered = honest.replace(b'"r"', b'"R"') if b'"r"' in honest else honest[:-1] + b" "
    assert len(tampered) == len(honest) and tampered != honest
    plant(tmp_path / "hf-cache", commit, CONFIG, tampered)
    config = write_config(tmp_path / "project")
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    lock = json.loads(config.with_suffix(".lock").read_text())["finetunes"]["support-bot"]
    assert lock["assets"][CONFIG]["sha256"] == "sha256:" + hashlib.sha256(honest).hexdigest()
    stored = cf_env.store.list_assets(lock["id"])
    assert {a.file_name: a.sha256 for a in stored}[CONFIG] == hashlib.sha256(honest).hexdigest()


def test_m1_offline_a_planted_config_is_refused(
    cli: Cli, hub: LyingHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = push(hub)
    config = write_config(tmp_path / "project", commit)
    assert cli("plan", "-c", config).exit_code == 0  # the listing is kept with the commit
    shutil.rmtree(tmp_path / "project" / ".reconciler" / "sources", ignore_errors=True)
    assert cli("plan", "-c", config).exit_code == 0
    # the cached config replaced by other bytes, then planned offline with fresh facts
    for cached in (tmp_path / "hf-cache").rglob(CONFIG):
        cached.unlink()
        cached.write_bytes(b'{"r": 8, "lora_alpha": 16}')
    facts = next((tmp_path / "project" / ".reconciler" / "sources").rglob(f"{commit}.json"))
    data = json.loads(facts.read_text())
    for key in list(data):
        if key not in ("version", "files"):
            del data[key]
    facts.write_text(json.dumps(data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "not the bytes the Hub lists" in planned.stderr


def test_l12_the_facts_of_a_loopback_hub_do_not_depend_on_its_port(
    cli: Cli, hub: LyingHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = push(hub)
    config = write_config(tmp_path / "project", commit)
    assert cli("plan", "-c", config).exit_code == 0
    sources = tmp_path / "project" / ".reconciler" / "sources" / "hf"
    first = sorted(p.relative_to(sources) for p in sources.rglob("*.json"))
    assert not any(re.search(r"_\d{4,5}_", str(p)) for p in first), first
    # the same Hub on another port (as --sandbox is on each run): warm, nothing new kept
    endpoint = os.environ["HF_ENDPOINT"]
    port = int(endpoint.split(":")[2].split("/")[0])
    server = make_server("127.0.0.1", 0, hub, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", endpoint.replace(str(port), str(server.port)))
        hub.seen.clear()
        assert cli("plan", "-c", config).exit_code == 0
        assert hub.seen == []  # a pinned commit, warm: nothing asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert sorted(p.relative_to(sources) for p in sources.rglob("*.json")) == first


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://hfuser:hunter2-secret@127.0.0.1:{port}/hf",
        "http://127.0.0.1:{port}/hf?token=hunter2-secret",
    ],
)
def test_l8_credentials_in_hf_endpoint_are_refused_unshown(
    cli: Cli, hub: LyingHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    port = os.environ["HF_ENDPOINT"].split(":")[2].split("/")[0]
    monkeypatch.setenv("HF_ENDPOINT", endpoint.format(port=port))
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "hunter2" not in planned.output
    assert "HF_ENDPOINT" in planned.stderr


@pytest.mark.parametrize("token", ["hf_abc\n", "hf abc", "hf_\x1b[31mabc", "hf_é"])
def test_l8_a_malformed_hf_token_is_named_not_sent(
    cli: Cli, hub: LyingHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    monkeypatch.setenv("HF_TOKEN", token)
    hub.seen.clear()
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "HF_TOKEN" in planned.stderr
    assert "LocalProtocolError" not in planned.output
    assert "cannot reach the Hub" not in planned.output
    assert hub.seen == []  # nothing was sent


def endless(request: Request) -> Response | None:
    if request.method != "GET" or request.headers.get("Range"):
        return None  # plan's Range reads are answered honestly

    def body() -> Iterator[bytes]:
        while True:
            yield b"\0" * 65536

    return Response(body(), 200)


def test_m4_an_endless_weights_body_is_not_written_for_ever(
    cli: Cli, hub: LyingHub, cf_env: SandboxServer, tmp_path: Path
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    hub.raw.insert(0, (re.compile(LFS), endless))
    started = time.monotonic()
    applied = cli("apply", "-c", config, "--auto-approve")
    assert time.monotonic() - started < 30
    assert applied.exit_code == 1, applied.output
    no_traceback(applied.output)
    assert WEIGHTS in applied.output
    assert [c for c in cf_env.request_log if c[0] == "POST"] == []
    assert sum(p.stat().st_size for p in (tmp_path / "hf-cache").rglob("*") if p.is_file()) < (
        1 << 20
    )


def _bomb() -> bytes:
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (16 << 20)
    return b"".join(gz.compress(zeros) for _ in range(32)) + gz.flush()  # 512 MB inflated


BOMB = _bomb()


def gzip_bomb(request: Request) -> Response | None:
    if not request.headers.get("Range"):
        return None
    return Response(BOMB, 206, {"Content-Encoding": "gzip", "Content-Range": "bytes 0-7/2576"})


def test_m4_plan_never_inflates_a_compressed_header_read(
    cli: Cli, hub: LyingHub, tmp_path: Path
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    hub.raw.insert(0, (re.compile(LFS), gzip_bomb))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    planned = cli("plan", "-c", config)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 100 << 10, f"{grown:,} KiB more at the peak"  # not 512 MB
    assert planned.exit_code == 1, planned.output  # 8 bytes of zeros: no header
    no_traceback(planned.output)


@pytest.mark.parametrize("where", ["plan", "apply"])
def test_l9_the_hub_may_not_redirect_to_plain_http_elsewhere(
    cli: Cli, hub: LyingHub, cf_env: SandboxServer, tmp_path: Path, where: str
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    resolve = rf"/hf/{REPO}/resolve/[0-9a-f]{{40}}/{WEIGHTS}"
    elsewhere = "http://example.invalid/weights"

    def away(request: Request) -> Response | None:
        if where == "plan" and not request.headers.get("Range"):
            return None
        return Response(b"", 302, {"Location": elsewhere, "X-Linked-Size": "2576"})

    hub.raw.insert(0, (re.compile(resolve), away))
    result = cli(where, "-c", config, *(["--auto-approve"] if where == "apply" else []))
    assert result.exit_code == 1, result.output
    no_traceback(result.output)
    assert "redirect to plain http://example.invalid" in result.output
    assert [c for c in cf_env.request_log if c[0] == "POST"] == []


@pytest.mark.parametrize(
    "edit",
    [
        siblings(lambda s: s.update(lfs="x") if "lfs" in s else None),
        siblings(lambda s: s.get("lfs", {}).pop("sha256", None)),
        lambda body: body.update(siblings="abc"),
        lambda body: [body],
        lambda body: body.update(siblings=[5]),
    ],
    ids=["lfs-not-an-object", "lfs-without-sha256", "siblings-a-string", "a-list", "sibling-5"],
)
def test_a_model_info_of_the_wrong_shape_is_named_not_a_crash(
    cli: Cli, hub: LyingHub, tmp_path: Path, edit: Edit
) -> None:
    push(hub)
    config = write_config(tmp_path / "project")
    hub.lie(INFO, edit)
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "cannot reach the Hub" not in planned.stderr  # it was reached: it answered nonsense


def test_names_the_hub_gives_are_shown_escaped(cli: Cli, hub: LyingHub, tmp_path: Path) -> None:
    push(hub)
    config = write_config(tmp_path / "project", revision="v9")

    def lie(body: Any) -> None:
        body["tags"] = [
            {"name": "\x1b]52;c;cm0gLXJmIH4K\x07", "ref": "x", "targetCommit": "a" * 40},
            {"name": "v1\u202e", "ref": "y", "targetCommit": "a" * 40},
        ] * 50

    hub.lie(REFS, lie)
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 1, planned.output
    assert "\x1b" not in planned.output and "\u202e" not in planned.output
    assert "the repo has no tag or branch v9" in planned.stderr
    assert len(planned.stderr) < 2000  # a hundred names are not all listed


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ETag", '"../../../../escaped-etag"'),
        ("X-Linked-Etag", '"../../../../escaped-etag"'),
        ("X-Repo-Commit", "../../../../escaped-commit"),
        ("ETag", '"/tmp/reconciler-etag-absolute"'),
    ],
)
def test_file_headers_that_name_a_path_are_refused(
    cli: Cli, hub: LyingHub, cf_env: SandboxServer, tmp_path: Path, header: str, value: str
) -> None:
    """huggingface_hub names cache files after ETag and X-Repo-Commit: they are checked
    before it sees them."""
    push(hub)
    config = write_config(tmp_path / "project")
    resolve = rf"/hf/{REPO}/resolve/[0-9a-f]{{40}}/.+"

    def lie(headers: Headers) -> Headers:
        kept = [(k, v) for k, v in headers if k.lower() != header.lower()]
        return [*kept, (header, value)]

    hub.header_lies.insert(0, (re.compile(resolve), lie))
    before = files_under(tmp_path)
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 1, applied.output
    no_traceback(applied.output)
    new = files_under(tmp_path) - before
    assert not [p for p in new if "escaped" in p.name], new
    cache = tmp_path / "hf-cache"
    assert not [p for p in new if cache not in p.parents and tmp_path / "project" not in p.parents]
    assert not Path("/tmp/reconciler-etag-absolute").exists()
    assert [c for c in cf_env.request_log if c[0] == "POST"] == []


def test_m4_a_trickled_header_read_meets_its_deadline(
    cli: Cli, hub: LyingHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.sources import bounded

    push(hub)
    config = write_config(tmp_path / "project")

    def trickle(request: Request) -> Response | None:
        if not request.headers.get("Range"):
            return None

        def body() -> Iterator[bytes]:
            for _ in range(60):
                time.sleep(0.5)
                yield b"\0"

        return Response(body(), 206, {"Content-Range": "bytes 0-59/2576"})

    hub.raw.insert(0, (re.compile(LFS), trickle))
    monkeypatch.setattr(bounded, "DEADLINE", 2.0)
    started = time.monotonic()
    planned = cli("plan", "-c", config)
    assert time.monotonic() - started < 15
    assert planned.exit_code == 1, planned.output
    no_traceback(planned.output)
    assert "too slowly" in planned.stderr
