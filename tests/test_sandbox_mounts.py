"""The sandbox as mounted APIs: routing by prefix, the neutral answer for paths no API owns,
options reaching a mount, the registry, and faults in the shape of whoever owns the path."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli import sandbox as sandbox_command
from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN, mounts
from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import ManualClock, SystemClock
from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.common.limits import SandboxLimits
from reconciler.sandbox.common.mount import MountContext, owner
from reconciler.sandbox.common.responses import send_json
from reconciler.sandbox.server import SandboxServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

FINETUNES = f"/client/v4/accounts/{DEFAULT_ACCOUNT_ID}/ai/finetunes"
COHERE_MODELS = "/v1/finetuning/finetuned-models"
HUB_INFO = "/hf/api/models/acme/absent"
SERVED = "No emulated API at this path; the sandbox serves /client/v4, /fireworks, /hf, /v1, /vllm"
HERE = Path(__file__).stem


# --- test mounts, named in SandboxServer(mounts=...) as "test_sandbox_mounts:<factory>" -----


class Echo:
    """Answers every request with its path and the options it was given."""

    def __init__(self, prefix: str, context: MountContext) -> None:
        self.prefix = prefix
        self.context = context

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        options = {k: v for k, v in self.context.options.items() if isinstance(v, str | int)}
        body = {"mount": self.prefix, "path": environ["PATH_INFO"], "options": options}
        return send_json(start_response, 200, body)


def echo(context: MountContext) -> Echo:
    return Echo(context.option("echo_prefix", str, "/echo"), context)


def inner_echo(context: MountContext) -> Echo:
    """Inside Cohere's /v1: the longer prefix takes its paths."""
    return Echo("/v1/echo", context)


class Broken:
    prefix = "/broken"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("broken mount on fire")


def broken(context: MountContext) -> Broken:
    return Broken()


@pytest.fixture
def raw() -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    with httpx.Client(headers=headers, timeout=10, verify=False) as client:
        yield client


def with_test_mounts(tmp_path: Path, *names: str, **kwargs: Any) -> SandboxServer:
    entries = (*mounts.MOUNTS, *(f"{HERE}:{name}" for name in names))
    return SandboxServer(tmp_path / "data", mounts=entries, **kwargs)


# --- paths no API owns --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    # the root; a prefix's look-alike; a Cloudflare path without /client/v4 (a base URL set
    # to the host alone); an API version nobody serves
    ["/", "/client/v4x", f"/accounts/{DEFAULT_ACCOUNT_ID}/ai/finetunes", "/v2/models", "/hfx"],
)
def test_a_path_no_api_owns_is_a_neutral_404(
    sb: SandboxServer, raw: httpx.Client, path: str
) -> None:
    response = raw.get(sb.url + path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"status": 404, "message": SERVED}}
    assert sb.request_log == [("GET", path)]


def test_each_prefix_goes_to_its_own_api(sb: SandboxServer, raw: httpx.Client) -> None:
    cloudflare = raw.get(sb.url + "/client/v4/zones").json()
    cohere = raw.get(sb.url + "/v1/unknown").json()
    hub = raw.get(sb.url + HUB_INFO)
    assert cloudflare["errors"] == [{"code": 7000, "message": "No route for that URI"}]
    assert cohere == {"message": "route not found: GET /v1/unknown"}
    assert hub.status_code == 404 and hub.headers["x-error-code"] == "RepoNotFound"


# --- mounts, options, URLs ---------------------------------------------------------------


def test_the_longest_prefix_wins_and_options_reach_the_mount(
    tmp_path: Path, raw: httpx.Client
) -> None:
    options = {"echo_prefix": "/echo", "echo_greeting": "hello"}
    with with_test_mounts(tmp_path, "echo", "inner_echo", options=options) as sb:
        inner = raw.get(sb.url + "/v1/echo/x").json()
        cohere = raw.get(sb.url + COHERE_MODELS)
        outer = raw.get(sb.url_for("/echo") + "/y").json()
        look_alike = raw.get(sb.url + "/v1/echoes")
    assert inner["mount"] == "/v1/echo" and inner["path"] == "/v1/echo/x"
    assert cohere.status_code == 200  # Cohere keeps the rest of /v1
    assert look_alike.json() == {"message": "route not found: GET /v1/echoes"}
    assert outer == {"mount": "/echo", "path": "/echo/y", "options": options}


def test_the_server_hands_its_own_state_to_the_mounts(tmp_path: Path) -> None:
    limits = SandboxLimits(max_asset_bytes=10)
    with with_test_mounts(tmp_path, "echo", limits=limits) as sb:
        [context] = [m.context for m in sb.mounts if isinstance(m, Echo)]
    assert context.options["limits"] is limits
    assert context.options["cloudflare_store"] is sb.store
    assert context.options["cohere_store"] is sb.cohere_store
    assert context.options["hub_log"] is sb.hub_log
    assert context.clock is sb.clock and context.data_dir == sb.data_dir


def test_options_may_not_repeat_what_the_server_sets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"options may not set \['limits'\]"):
        SandboxServer(tmp_path / "d", options={"limits": SandboxLimits(), "other": 1})


def test_url_for_and_the_endpoints_of_the_mounts(sb: SandboxServer) -> None:
    assert sb.url_for("/client/v4") == sb.cloudflare_base_url == sb.url + "/client/v4"
    assert sb.url_for("/hf") == sb.hub_url
    for bad in ("client/v4", "/client/v4/"):
        with pytest.raises(ValueError):
            sb.url_for(bad)
    assert sb.endpoints() == [
        ("Cloudflare API", sb.cloudflare_base_url),
        ("Cohere API", sb.cohere_base_url),
        ("Hub", sb.hub_url),
        ("Fireworks AI API", sb.url + "/fireworks"),
        ("vLLM fleet", sb.url + "/vllm"),
    ]


def test_mounts_exist_only_while_serving(tmp_path: Path) -> None:
    server = SandboxServer(tmp_path / "d")
    with pytest.raises(RuntimeError):
        _ = server.mounts
    with server:
        assert [m.prefix for m in server.mounts] == [
            "/client/v4",
            "/v1",
            "/hf",
            "/fireworks",
            "/vllm",
        ]


def test_an_option_of_the_wrong_type_fails_at_start(tmp_path: Path) -> None:
    context = MountContext(tmp_path, Tokens([DEFAULT_TOKEN]), SystemClock(), {"n": "3"})
    assert context.option("n", str) == "3"
    assert context.option("absent", int) is None
    assert context.option("absent", int, 7) == 7
    with pytest.raises(TypeError, match="'n' must be of type int"):
        context.option("n", int)
    server = with_test_mounts(tmp_path, "echo", options={"echo_prefix": 5})
    with pytest.raises(TypeError, match="echo_prefix"):
        server.start()


# --- unexpected failures -----------------------------------------------------------------


def test_a_mount_that_lets_an_exception_escape_is_a_neutral_500(
    tmp_path: Path, raw: httpx.Client
) -> None:
    with with_test_mounts(tmp_path, "broken") as sb:
        response = raw.get(sb.url + "/broken/x")
        after = raw.get(sb.url + FINETUNES)  # the server carries on
    assert response.status_code == 500
    assert response.json() == {"error": {"status": 500, "message": "Internal Server Error"}}
    assert "fire" not in response.text and "Traceback" not in response.text
    assert after.status_code == 200


def test_an_unexpected_failure_in_the_hub_is_a_500_in_its_shape(
    sb: SandboxServer, raw: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(repo_id: str) -> None:
        raise RuntimeError("hub on fire")

    [hub] = [m for m in sb.mounts if m.prefix == "/hf"]
    monkeypatch.setattr(hub.store, "repo", explode)
    response = raw.get(sb.url + HUB_INFO)
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Error"}
    assert response.headers["x-error-message"] == "Internal Error"
    assert "fire" not in response.text


# --- faults follow the owner of the path -------------------------------------------------


def test_injected_errors_take_the_shape_of_the_api_that_owns_the_path(
    tmp_path: Path, raw: httpx.Client
) -> None:
    spec = FaultSpec.parse("status=503")
    with with_test_mounts(tmp_path, "echo", faults=spec) as sb:
        bodies = {
            path: raw.get(sb.url + path).json()
            for path in (FINETUNES, COHERE_MODELS, HUB_INFO, "/echo/x", "/nowhere")
        }
    neutral = {"error": {"status": 503, "message": "Service Unavailable"}}
    assert bodies == {
        FINETUNES: {
            "success": False,
            "errors": [{"code": 10001, "message": "Service Unavailable"}],
            "messages": [],
            "result": None,
        },
        COHERE_MODELS: {"message": "service unavailable"},
        HUB_INFO: {"error": "Service Unavailable"},
        "/echo/x": neutral,  # a mount without fault_body
        "/nowhere": neutral,
    }
    assert [f.kind for f in sb.fault_log] == ["status"] * 5


def test_the_rate_limit_counts_only_the_apis_that_have_one(
    tmp_path: Path, raw: httpx.Client
) -> None:
    spec = FaultSpec.parse("rate_limit=2/1m")
    with SandboxServer(tmp_path / "data", faults=spec, clock=ManualClock()) as sb:
        others = [raw.get(sb.url + path).status_code for path in (HUB_INFO, "/", "/v1/x") * 3]
        cloudflare = [raw.get(sb.url + FINETUNES).status_code for _ in range(3)]
    assert others == [404] * 9
    assert cloudflare == [200, 200, 429]


# --- the registry ------------------------------------------------------------------------


def test_the_registry_refuses_malformed_entries_and_a_prefix_taken_twice(tmp_path: Path) -> None:
    context = MountContext(tmp_path, Tokens([DEFAULT_TOKEN]), SystemClock())
    for entry in ("no-colon", ":mount", "module:"):
        with pytest.raises(ValueError, match="module:attribute"):
            mounts.factory(entry)
    with pytest.raises(ValueError, match="'/echo' is malformed or already taken"):
        mounts.build(context, (f"{HERE}:echo", f"{HERE}:echo"))
    echo_at = MountContext(tmp_path, context.tokens, context.clock, {"echo_prefix": "/echo/"})
    with pytest.raises(ValueError, match="malformed"):
        mounts.build(echo_at, (f"{HERE}:echo",))


def test_owner_picks_the_longest_prefix_and_needs_a_segment_boundary() -> None:
    short, long = Broken(), Broken()
    short.prefix, long.prefix = "/v1", "/v1/echo"
    assert owner([short, long], "/v1/echo/x") is long
    assert owner([long, short], "/v1/echo") is long
    assert owner([short, long], "/v1/echoes") is short
    assert owner([short, long], "/v10") is None


def test_importing_the_registry_loads_no_api_and_no_werkzeug() -> None:
    code = (
        "import sys, reconciler.sandbox, reconciler.sandbox.mounts;"
        " print(sorted(m for m in sys.modules"
        " if m.startswith('werkzeug') or m.endswith(('.api', '.app', '.mount'))"
        " and m.startswith('reconciler.sandbox.') and 'common' not in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the command's flags for mounts ------------------------------------------------------


def test_mount_flags_become_mount_options(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = (
        click.option("--echo-greeting"),
        click.option("--echo-count", type=int),
    )
    monkeypatch.setattr(sandbox_command, "MOUNT_OPTIONS", flags)

    @click.command()
    @sandbox_command.mount_options
    def command(**mount_flags: Any) -> None:
        click.echo(json.dumps(mount_flags, sort_keys=True))

    runner = CliRunner()
    given = runner.invoke(command, ["--echo-count", "3", "--echo-greeting", "hi"])
    unset = runner.invoke(command, [])
    helped = runner.invoke(command, ["--help"])
    assert json.loads(given.output) == {"echo_count": 3, "echo_greeting": "hi"}
    assert json.loads(unset.output) == {"echo_count": None, "echo_greeting": None}
    assert helped.output.index("--echo-greeting") < helped.output.index("--echo-count")
