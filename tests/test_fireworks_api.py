"""The Fireworks client over real HTTP: against the emulator (sandbox/fireworks) for the flow,
and against a small hostile double for what the emulator never does (bad pages, bad ids,
unknown states, signed URLs elsewhere)."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from reconciler.base.errors import AuthError, CredentialsError, EndpointError, ProviderError
from reconciler.base.model import AssetFile
from reconciler.providers.endpoint import Endpoint
from reconciler.providers.fireworks.api import FireworksApi
from reconciler.providers.fireworks.env import endpoint_from_env
from reconciler.providers.fireworks.marker import files_digest
from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import SystemClock
from reconciler.sandbox.common.mount import MountContext
from reconciler.sandbox.fireworks.mount import mount

TOKEN = "fw-test-token-7d2c1a-never-shown"
ACCOUNT = "acme"
BASE = "accounts/fireworks/models/llama-v3p1-8b-instruct"


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """A WSGI app on 127.0.0.1; yields its origin."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def client(base_url: str, token: str = TOKEN, **options: Any) -> FireworksApi:
    options.setdefault("poll", 0.01)
    options.setdefault("validate_timeout", 5.0)
    return FireworksApi(Endpoint(base_url=base_url, token=token, label="sandbox"), **options)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    """The Fireworks emulator, serving account acme; yields FIREWORKS_BASE_URL."""
    context = MountContext(
        data_dir=tmp_path / "sandbox-data",
        tokens=Tokens([TOKEN]),
        clock=SystemClock(),
        options={"fireworks_accounts": [ACCOUNT]},
    )
    with serve(mount(context)) as origin:
        yield origin + "/fireworks"


@pytest.fixture
def fw(emulator: str) -> Iterator[FireworksApi]:
    api = client(emulator)
    yield api
    api.close()


def safetensors(rank: int, modules: tuple[str, ...]) -> bytes:
    header: dict[str, Any] = {}
    data = b""
    for module in modules:
        for part, shape in (("lora_A", [rank, 8]), ("lora_B", [8, rank])):
            payload = struct.pack(f"<{shape[0] * shape[1]}f", *([0.5] * (shape[0] * shape[1])))
            name = f"base_model.model.model.layers.0.self_attn.{module}.{part}.weight"
            header[name] = {
                "dtype": "F32",
                "shape": shape,
                "data_offsets": [len(data), len(data) + len(payload)],
            }
            data += payload
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def adapter(
    folder: Path, rank: int = 8, modules: tuple[str, ...] = ("q_proj", "v_proj")
) -> list[AssetFile]:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"r": rank, "target_modules": list(modules), "peft_type": "LORA"}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(safetensors(rank, modules))
    return [AssetFile(n, folder / n) for n in ("adapter_config.json", "adapter_model.safetensors")]


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def create(fw: FireworksApi, model_id: str, description: str | None = "support bot") -> Any:
    return fw.create_model(
        ACCOUNT,
        model_id,
        base_model=BASE,
        rank=8,
        target_modules=("q_proj", "v_proj"),
        description=description,
        digest="sha256:" + "ab" * 32,
    )


# --- against the emulator ------------------------------------------------------------------


def test_the_whole_flow_makes_a_ready_model_whose_files_are_the_bytes_sent(
    fw: FireworksApi, emulator: str, tmp_path: Path
) -> None:
    files = adapter(tmp_path / "a")
    seen: list[tuple[int, int]] = []
    made = create(fw, "support-v1")
    assert (made.state, made.kind, made.id) == ("UPLOADING", "HF_PEFT_ADDON", "support-v1")
    assert (made.description, made.digest) == ("support bot", "sha256:" + "ab" * 32)
    digests = fw.upload_files(ACCOUNT, "support-v1", files, lambda s, t: seen.append((s, t)))
    assert {n: d.sha256 for n, d in digests.items()} == {f.name: sha(f.path) for f in files}
    total = sum(f.path.stat().st_size for f in files)
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)
    assert fw.validate_upload(ACCOUNT, "support-v1") == ()
    got = fw.get_model(ACCOUNT, "support-v1")
    assert got is not None and got.state == "READY"
    assert (got.base_model, got.rank, got.target_modules) == (BASE, 8, ("q_proj", "v_proj"))
    urls = fw.download_endpoint(ACCOUNT, "support-v1")
    assert set(urls) == {f.name for f in files}
    for f in files:  # the stored bytes are the file's
        body = httpx.get(urls[f.name]).content
        assert "sha256:" + hashlib.sha256(body).hexdigest() == sha(f.path)
    assert fw.stored_digests(ACCOUNT, "support-v1") == digests


def test_stored_files_are_read_back_within_a_bound(fw: FireworksApi, tmp_path: Path) -> None:
    files = adapter(tmp_path / "a")
    create(fw, "bounded")
    with pytest.raises(ProviderError, match="FAILED_PRECONDITION"):
        fw.stored_digests(ACCOUNT, "bounded")  # not READY: nothing to download yet
    fw.upload_files(ACCOUNT, "bounded", files)
    fw.validate_upload(ACCOUNT, "bounded")
    with pytest.raises(EndpointError, match=r"adapter_model\.safetensors is over 100 bytes"):
        fw.stored_digests(ACCOUNT, "bounded", max_bytes=100)


def test_the_digest_marker_of_real_files_reads_back(fw: FireworksApi, tmp_path: Path) -> None:
    files = adapter(tmp_path / "a")
    digests = fw.upload_files(ACCOUNT, create(fw, "m1").id, files)
    marker = files_digest(digests.values())
    made = fw.create_model(
        ACCOUNT,
        "m2",
        base_model=BASE,
        rank=8,
        target_modules=["q_proj", "v_proj"],
        description=None,
        digest=marker,
    )
    listed = {m.id: m for m in fw.list_models(ACCOUNT)}
    assert listed["m2"].digest == marker == made.digest
    assert listed["m2"].description is None


def test_list_get_and_delete(fw: FireworksApi) -> None:
    assert fw.list_models(ACCOUNT) == ()
    for name in ("b-model", "a-model"):
        create(fw, name)
    assert sorted(m.id for m in fw.list_models(ACCOUNT)) == ["a-model", "b-model"]
    assert fw.get_model(ACCOUNT, "nope") is None
    assert fw.delete_model(ACCOUNT, "a-model") is True
    assert fw.delete_model(ACCOUNT, "a-model") is False  # already gone counts as deleted
    assert [m.id for m in fw.list_models(ACCOUNT)] == ["b-model"]


def test_a_second_create_of_an_id_is_refused_by_name(fw: FireworksApi) -> None:
    create(fw, "dup")
    with pytest.raises(ProviderError, match=r"create model dup.*ALREADY_EXISTS"):
        create(fw, "dup")


def test_validate_before_any_upload_waits_its_bound_then_says_why(emulator: str) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    api = client(emulator, clock=lambda: now[0], sleep=sleep, poll=2.0, validate_timeout=10.0)
    create(api, "empty")
    with pytest.raises(ProviderError, match=r"still not ready after 10s.*no files"):
        api.validate_upload(ACCOUNT, "empty")
    assert now[0] == 10.0  # five polls of 2 s, then the bound


def test_a_wrong_key_is_an_auth_error_that_never_shows_the_key(emulator: str) -> None:
    api = client(emulator, token="another-token-abcdef")
    with pytest.raises(AuthError) as caught:
        api.list_models(ACCOUNT)
    assert "UNAUTHENTICATED" in str(caught.value)
    assert "another-token-abcdef" not in str(caught.value)


def test_an_account_the_key_cannot_reach_is_refused(fw: FireworksApi) -> None:
    with pytest.raises(AuthError, match="PERMISSION_DENIED"):
        fw.list_models("someone-else")


def test_a_file_that_grows_after_its_size_was_declared_is_not_sent(
    fw: FireworksApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = adapter(tmp_path / "a")
    create(fw, "grown")
    real = fw.upload_endpoint

    def grow_then_sign(account: str, model_id: str, sizes: Any) -> dict[str, str]:
        with files[1].path.open("ab") as f:
            f.write(b"\0" * 16)
        return real(account, model_id, sizes)

    monkeypatch.setattr(fw, "upload_endpoint", grow_then_sign)  # the race cannot be timed
    with pytest.raises(Exception, match="changed after its size was declared"):
        fw.upload_files(ACCOUNT, "grown", files)


# --- the environment -----------------------------------------------------------------------


def test_the_environment_names_an_origin_without_v1() -> None:
    found = endpoint_from_env({"FIREWORKS_API_KEY": TOKEN})
    assert found.base_url == "https://api.fireworks.ai" and found.label == found.base_url
    sandbox = endpoint_from_env(
        {"FIREWORKS_API_KEY": TOKEN, "FIREWORKS_BASE_URL": "http://127.0.0.1:9/fireworks/"},
        "sandbox",
    )
    assert sandbox.base_url == "http://127.0.0.1:9/fireworks"
    with pytest.raises(CredentialsError, match="ends in /v1"):
        endpoint_from_env(
            {"FIREWORKS_API_KEY": TOKEN, "FIREWORKS_BASE_URL": "https://api.fireworks.ai/v1"}
        )
    with pytest.raises(CredentialsError, match="FIREWORKS_API_KEY is not set"):
        endpoint_from_env({})


# --- against a hostile double --------------------------------------------------------------


@dataclass
class Double:
    """A WSGI app answering each request with `answer(request)`; it records them all."""

    answer: Callable[[Request], Response]
    requests: list[dict[str, Any]] = field(default_factory=list)
    origin: str = ""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "args": dict(request.args),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return self.answer(request)(environ, start_response)


def app_origin(app: Double) -> str:
    return app.origin


def reply(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def model(model_id: str, account: str = ACCOUNT, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"accounts/{account}/models/{model_id}",
        "kind": "HF_PEFT_ADDON",
        "state": "READY",
        "createTime": "2026-11-02T10:00:00Z",
        **fields,
    }


@contextmanager
def double(answer: Callable[[Request], Response]) -> Iterator[tuple[FireworksApi, Double]]:
    app = Double(answer)
    with serve(app) as origin:
        app.origin = origin
        api = client(origin)
        try:
            yield api, app
        finally:
            api.close()


def test_list_follows_page_tokens_asking_for_200_a_page() -> None:
    pages = {"": ("p2", ["a"]), "p2": ("p3", ["b"]), "p3": ("", ["c"])}

    def answer(request: Request) -> Response:
        token, ids = pages[request.args.get("pageToken", "")]
        return reply({"models": [model(i) for i in ids], "nextPageToken": token})

    with double(answer) as (api, app):
        assert [m.id for m in api.list_models(ACCOUNT)] == ["a", "b", "c"]
    assert [r["args"] for r in app.requests] == [
        {"pageSize": "200"},
        {"pageSize": "200", "pageToken": "p2"},
        {"pageSize": "200", "pageToken": "p3"},
    ]
    assert {r["path"] for r in app.requests} == {"/v1/accounts/acme/models"}


def test_a_page_token_that_comes_again_ends_the_list_with_an_error() -> None:
    tokens = iter(["t1", "t2", "t1"])

    def answer(request: Request) -> Response:
        return reply({"models": [], "nextPageToken": next(tokens)})

    with double(answer) as (api, app), pytest.raises(EndpointError, match="gave before"):
        api.list_models(ACCOUNT)
    assert len(app.requests) == 3


def test_a_list_that_never_ends_is_cut_at_the_page_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = iter(range(10**6))
    monkeypatch.setattr("reconciler.providers.fireworks.gateway.MAX_PAGES", 7)  # not 500 requests

    def answer(request: Request) -> Response:
        return reply({"models": [], "nextPageToken": f"t{next(counter)}"})

    with double(answer) as (api, app), pytest.raises(EndpointError, match="more than 7 pages"):
        api.list_models(ACCOUNT)
    assert len(app.requests) == 7


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (model("x", account="other"), "of another account"),
        ({**model("x"), "name": "accounts/acme/models/../../x"}, "not a model name"),
        ({**model("x"), "name": "accounts/acme/models/" + "a" * 64}, "not a model name"),
        ({**model("x"), "name": "accounts/acme/models/Upper"}, "not a model name"),
        (model("x", state="DELETING"), "state is DELETING, not one this client knows"),
        (model("x", status={"code": 9}), "status is 9"),
        (model("x", createTime="yesterday"), "not an RFC 3339 time"),
        (model("x", peftDetails={"r": True}), "peftDetails.r is True"),
        (model("x", peftDetails={"r": 0}), "not a LoRA rank"),
        (model("x", peftDetails={"baseModel": "llama"}), "baseModel llama is not a model name"),
        (model("x", peftDetails={"targetModules": ["q/../k"]}), "targetModules"),
        (model("x", description="d" * 5000), "description is not a text"),
        (model("x", kind="lora\n"), "kind is"),
        ("a model", "not a JSON object"),
    ],
)
def test_a_model_that_is_not_one_is_refused_by_field(item: Any, expected: str) -> None:
    answer = reply({"models": [item]})
    with double(lambda _r: answer) as (api, _app), pytest.raises(EndpointError, match=expected):
        api.list_models(ACCOUNT)


def test_whole_numbers_may_come_as_strings_and_unknown_kinds_are_kept() -> None:
    item = model("x", kind="SOME_NEW_KIND", peftDetails={"r": "16", "baseModel": BASE})
    with double(lambda _r: reply({"models": [item]})) as (api, _app):
        (found,) = api.list_models(ACCOUNT)
    assert (found.rank, found.kind) == (16, "SOME_NEW_KIND")


def test_a_model_listed_twice_is_refused() -> None:
    answer = reply({"models": [model("x"), model("x")]})
    with double(lambda _r: answer) as (api, _app), pytest.raises(EndpointError, match="twice"):
        api.list_models(ACCOUNT)


def storage_double(urls: Callable[[str], dict[str, str]]) -> Callable[[Request], Response]:
    """getUploadEndpoint answered with `urls(origin)`; PUTs to /store/* stored."""

    def answer(request: Request) -> Response:
        if request.path.endswith(":getUploadEndpoint"):
            return reply({"filenameToSignedUrls": urls(request.host_url.rstrip("/"))})
        if request.path.startswith("/store/") and request.method == "PUT":
            return Response(b"", status=200)
        if request.path.endswith(":validateUpload"):
            return reply({"warnings": ["r differs\x1b[2J"]})
        return reply({"code": 5, "message": "Not Found"}, 404)

    return answer


def test_the_put_carries_the_sdks_headers_and_no_credentials(tmp_path: Path) -> None:
    files = adapter(tmp_path / "a")
    names = [f.name for f in files]

    def urls(origin: str) -> dict[str, str]:
        return {n: f"{origin}/store/{n}?X-Goog-Signature=abc" for n in names}

    with double(storage_double(urls)) as (api, app):
        api.upload_files(ACCOUNT, "m", files)
        warnings = api.validate_upload(ACCOUNT, "m")
    assert warnings == ("r differs\\x1b[2J",)  # one visible line
    sign = app.requests[0]
    assert sign["path"] == "/v1/accounts/acme/models/m:getUploadEndpoint"
    assert sign["headers"]["Authorization"] == f"Bearer {TOKEN}"
    sizes = {f.name: str(f.path.stat().st_size) for f in files}
    assert json.loads(sign["body"]) == {"filenameToSize": sizes}
    puts = [r for r in app.requests if r["method"] == "PUT"]
    assert [p["path"] for p in puts] == [f"/store/{n}" for n in names]
    for put, f in zip(puts, files, strict=True):
        headers = {k.lower(): v for k, v in put["headers"].items()}
        size = f.path.stat().st_size
        assert "authorization" not in headers
        assert headers["content-type"] == "application/octet-stream"
        assert headers["x-goog-content-length-range"] == f"{size},{size}"
        assert headers["content-length"] == str(size)
        assert "transfer-encoding" not in headers
        assert put["body"] == f.path.read_bytes()


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        (lambda o: {"adapter_config.json": f"{o}/store/c"}, "none for adapter_model"),
        (
            lambda o: {
                "adapter_config.json": f"{o}/store/c",
                "adapter_model.safetensors": f"{o}/store/w",
                "extra.bin": f"{o}/store/x",
            },
            "files not asked about",
        ),
        (
            lambda o: {
                "adapter_config.json": "http://storage.example.com/c?X-Goog-Signature=s3cr3t",
                "adapter_model.safetensors": f"{o}/store/w",
            },
            "not https",
        ),
        (
            lambda o: {
                "adapter_config.json": "https://user:pw@storage.example.com/c",
                "adapter_model.safetensors": f"{o}/store/w",
            },
            "carries credentials",
        ),
        (
            lambda o: {"adapter_config.json": 7, "adapter_model.safetensors": f"{o}/store/w"},
            "not a URL",
        ),
    ],
)
def test_signed_urls_that_are_not_safe_are_refused_before_any_put(
    tmp_path: Path, urls: Callable[[str], dict[str, Any]], expected: str
) -> None:
    files = adapter(tmp_path / "a")
    with double(storage_double(urls)) as (api, app), pytest.raises(EndpointError) as caught:
        api.upload_files(ACCOUNT, "m", files)
    assert expected in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert not [r for r in app.requests if r["method"] == "PUT"]


def test_a_storage_refusal_is_said_with_gcs_code_and_host_not_signature(tmp_path: Path) -> None:
    files = adapter(tmp_path / "a")

    def answer(request: Request) -> Response:
        if request.path.endswith(":getUploadEndpoint"):
            origin = request.host_url.rstrip("/")
            return reply(
                {"filenameToSignedUrls": {f.name: f"{origin}/store?sig=s3cr3t" for f in files}}
            )
        xml = "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>"
        return Response(xml, status=403, content_type="application/xml")

    with double(answer) as (api, _app), pytest.raises(ProviderError) as caught:
        api.upload_files(ACCOUNT, "m", files)
    assert "HTTP 403 (SignatureDoesNotMatch: no)" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_validate_polls_while_failed_precondition_and_stops_on_another_error() -> None:
    answers = iter(
        [
            reply({"code": 9, "message": "still waiting"}, 400),
            reply({"code": 9, "message": "still waiting"}, 400),
            reply({}),
        ]
    )
    with double(lambda _r: next(answers)) as (api, app):
        assert api.validate_upload(ACCOUNT, "m") == ()
    assert len(app.requests) == 3
    bad = reply({"code": 3, "message": f"r is 2 ({TOKEN})"}, 400)
    with double(lambda _r: bad) as (api, app), pytest.raises(ProviderError) as caught:
        api.validate_upload(ACCOUNT, "m")
    assert "r is 2 (***) [code: INVALID_ARGUMENT]" in str(caught.value)
    assert len(app.requests) == 1


def test_a_400_without_a_grpc_body_is_not_taken_for_success() -> None:
    answer = reply({"message": "bad"}, 400)
    with double(lambda _r: answer) as (api, _app), pytest.raises(ProviderError, match="bad"):
        api.validate_upload(ACCOUNT, "m")


def test_ids_are_checked_before_they_become_paths() -> None:
    with double(lambda _r: reply({})) as (api, app):
        with pytest.raises(ProviderError, match="not a Fireworks model id"):
            api.get_model(ACCOUNT, "../other")
        with pytest.raises(ProviderError, match="not a Fireworks account id"):
            api.list_models("acme/models?x=")
        with pytest.raises(ProviderError, match="not a Fireworks model id"):
            create(api, "9starts-with-digit")
    assert app.requests == []


def test_signed_urls_older_than_45_minutes_are_asked_for_again(tmp_path: Path) -> None:
    files = adapter(tmp_path / "a")
    now = [0.0]

    def answer(request: Request) -> Response:
        if request.method == "PUT":
            now[0] += 46 * 60  # each file takes longer than the SDK waits before asking again
            return Response(b"", status=200)
        origin = request.host_url.rstrip("/")
        return reply({"filenameToSignedUrls": {f.name: f"{origin}/store/{f.name}" for f in files}})

    with double(answer) as (_api, app):
        api = client(app_origin(app), clock=lambda: now[0])
        api.upload_files(ACCOUNT, "m", files)
        api.close()
    kinds = [("sign" if r["method"] == "POST" else r["path"]) for r in app.requests]
    assert kinds == [
        "sign",
        "/store/adapter_config.json",
        "sign",
        "/store/adapter_model.safetensors",
    ]
    signs = [json.loads(r["body"]) for r in app.requests if r["method"] == "POST"]
    assert signs[0] == signs[1]  # the whole map again: the call replaces it


def test_a_put_answered_503_is_sent_again_from_the_top(tmp_path: Path) -> None:
    files = adapter(tmp_path / "a")[:1]
    puts = iter([Response(b"busy", status=503), Response(b"", status=200)])

    def answer(request: Request) -> Response:
        if request.method == "PUT":
            return next(puts)
        return reply({"filenameToSignedUrls": {files[0].name: f"{request.host_url}store/c"}})

    with double(answer) as (_api, app):
        api = client(app_origin(app), sleep=lambda _s: None)
        (digest,) = api.upload_files(ACCOUNT, "m", files).values()
        api.close()
    bodies = [r["body"] for r in app.requests if r["method"] == "PUT"]
    assert bodies == [files[0].path.read_bytes()] * 2
    assert digest.sha256 == sha(files[0].path) and digest.size == len(bodies[0])


def lost_create(found: dict[str, Any]) -> Callable[[Request], Response]:
    """A create whose answer is lost (502), and a model of that id there when looked for."""

    def answer(request: Request) -> Response:
        if request.method == "POST":
            return reply({"code": 14, "message": "upstream reset"}, 502)
        return reply(found)

    return answer


def test_a_lost_create_is_settled_by_reading_the_id_back() -> None:
    ours = model(
        "lost",
        state="UPLOADING",
        createTime="2099-01-01T00:00:00.123456789Z",
        description=f"support bot\nreconciler:sha256={'ab' * 32}",
        peftDetails={"baseModel": BASE, "r": 8, "targetModules": ["q_proj", "v_proj"]},
    )
    with double(lost_create(ours)) as (api, app):
        made = create(api, "lost")
    assert (made.id, made.state) == ("lost", "UPLOADING")
    assert [r["method"] for r in app.requests] == ["POST", "GET"]  # never sent twice


@pytest.mark.parametrize(
    "change",
    [
        {"createTime": "2020-01-01T00:00:00Z"},  # made before ours was sent
        {"description": "someone else's"},  # another digest
        {"peftDetails": {"baseModel": BASE, "r": 16, "targetModules": ["q_proj", "v_proj"]}},
    ],
)
def test_a_model_found_after_a_lost_create_that_is_not_ours_is_refused(
    change: dict[str, Any],
) -> None:
    theirs = model(
        "lost",
        createTime="2099-01-01T00:00:00Z",
        description=f"support bot\nreconciler:sha256={'ab' * 32}",
        peftDetails={"baseModel": BASE, "r": 8, "targetModules": ["q_proj", "v_proj"]},
    )
    theirs.update(change)
    with double(lost_create(theirs)) as (api, _app), pytest.raises(ProviderError) as caught:
        create(api, "lost")
    assert "not the one sent" in str(caught.value)
