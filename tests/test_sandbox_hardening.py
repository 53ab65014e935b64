"""The sandbox against odd and hostile use (issue 11), over real HTTP on 127.0.0.1: numbers past
64 bits, uploads cut short by a kill, connections that go quiet, and listening beyond loopback
with the documented token."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import ACCOUNT, Cli
from sandbox_clients import client_for, serve_process

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.cloudflare.store import SandboxStore
from reconciler.sandbox.cohere.store import CohereStore
from reconciler.sandbox.server import SandboxServer, exposure_problem, is_loopback

FINETUNES = f"/accounts/{ACCOUNT}/ai/finetunes"
TRAILER = b"\r\n--b0undary--\r\n"
HUGE = ["9223372036854775808", "99999999999999999999999999", "1e30", "inf", "nan"]


# --- numbers past 64 bits ------------------------------------------------------------------


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize(
    ("path", "key"),
    [
        (f"{FINETUNES}/public", "limit"),
        (f"{FINETUNES}/public", "offset"),
        (f"/accounts/{ACCOUNT}/ai/models/search", "page"),
        (f"/accounts/{ACCOUNT}/ai/models/search", "per_page"),
        (f"/accounts/{ACCOUNT}/ai/models/search", "source"),
    ],
)
def test_cloudflare_counts_past_64_bits_are_400(
    api: httpx.Client, path: str, key: str, value: str
) -> None:
    response = api.get(path, params={key: value})
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["code"] == 3010 and key in error["message"]


@pytest.mark.parametrize("value", [*HUGE, "2147483648"])
@pytest.mark.parametrize(
    "path",
    [
        "/v1/finetuning/finetuned-models",
        "/v1/finetuning/finetuned-models/{id}/events",
        "/v1/finetuning/finetuned-models/{id}/training-step-metrics",
    ],
)
def test_cohere_page_size_outside_int32_is_400(sb: SandboxServer, path: str, value: str) -> None:
    with client_for(sb, cohere=True) as co:
        response = co.get(path.format(id="no-such-model"), params={"page_size": value})
    if "{id}" in path:  # the model is looked up first: 404, and never a 500
        assert response.status_code in (400, 404), response.text
        return
    assert response.status_code == 400, response.text
    assert "page_size" in response.json()["message"]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("key", ["limit", "offset"])
def test_cohere_dataset_list_counts_past_64_bits_are_400(
    sb: SandboxServer, key: str, value: str
) -> None:
    with client_for(sb, cohere=True) as co:
        response = co.get("/v1/datasets", params={key: value})
    assert response.status_code == 400, response.text
    assert key in response.json()["message"]


# --- uploads cut short ---------------------------------------------------------------------


def partial_upload(
    port: int, finetune_id: str, sent: int, declared: int, token: str = DEFAULT_TOKEN
) -> socket.socket:
    """Open an upload of a file of `declared` bytes and send only `sent` of them (the rest,
    then TRAILER, complete it)."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file_name"\r\n\r\n'
        f"adapter_model.safetensors\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="blob"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    request = (
        f"POST /client/v4{FINETUNES}/{finetune_id}/finetune-assets HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + declared + len(TRAILER)}\r\n\r\n"
    ).encode()
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(request + head + b"x" * sent)
    return conn


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_upload_cut_short_by_a_kill_is_swept_at_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spool = data / "tmp"
    with serve_process(data) as served:
        base = served.line.split("Cloudflare API at ")[1].split(",")[0]
        port = int(base.split(":")[2].split("/")[0])
        created = httpx.post(
            base + FINETUNES,
            json={"model": "@cf/mistral/mistral-7b-instruct-v0.2-lora", "name": "cut"},
            headers={"Authorization": "Bearer serve-token"},
        )
        assert created.status_code == 200, created.text
        finetune_id = created.json()["result"]["id"]
        # Left open: the server is mid-upload when it dies.
        conn = partial_upload(port, finetune_id, 300_000, 10_000_000, token="serve-token")
        wait_for(lambda: any(spool.iterdir()))
        os.kill(served.pid, signal.SIGKILL)
    conn.close()
    left = list(spool.iterdir())
    assert len(left) == 1 and left[0].stat().st_size > 0  # what a kill leaves behind
    with SandboxServer(data):
        assert list(spool.iterdir()) == []


def test_the_sweep_leaves_an_upload_in_progress_alone(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "data") as sb, client_for(sb) as api:
        created = api.post(
            FINETUNES, json={"model": "@cf/mistral/mistral-7b-instruct-v0.2-lora", "name": "live"}
        )
        finetune_id = created.json()["result"]["id"]
        conn = partial_upload(sb.port, finetune_id, 200_000, 400_000)
        spool = sb.data_dir / "tmp"
        wait_for(lambda: any(spool.iterdir()))
        # Another store on the same data dir (another server starting): it must not take
        # the file that is being written.
        SandboxStore(sb.data_dir)
        CohereStore(sb.data_dir)
        assert len(list(spool.iterdir())) == 1
        conn.sendall(b"x" * 200_000 + TRAILER)
        reply = conn.recv(65536)
        conn.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply
        [asset] = sb.store.list_assets(finetune_id)
        assert asset.size == 400_000
        assert list(spool.iterdir()) == []


# --- connections that go quiet -------------------------------------------------------------


@contextmanager
def quick_timeouts(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "data", idle_timeout=0.3, read_timeout=0.5) as sb:
        yield sb


def closed_within(conn: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within `seconds`."""
    conn.settimeout(seconds)
    try:
        while conn.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connected, then silent
        b"GET /client/v4/accounts/",  # half a request line
        b"GET /client/v4/user HTTP/1.1\r\nHost: x\r\nAuthor",  # half the headers
    ],
)
def test_a_silent_or_half_sent_request_is_closed(tmp_path: Path, sent: bytes) -> None:
    with quick_timeouts(tmp_path) as sb:
        conn = socket.create_connection(("127.0.0.1", sb.port))
        conn.sendall(sent)
        started = time.monotonic()
        assert closed_within(conn, 5.0), "the server kept a quiet connection open"
        assert time.monotonic() - started < 4.0
        conn.close()
        with client_for(sb) as api:  # and it still serves
            assert api.get(FINETUNES).status_code == 200


def test_a_half_sent_body_is_closed_and_its_spool_removed(tmp_path: Path) -> None:
    with quick_timeouts(tmp_path) as sb, client_for(sb) as api:
        created = api.post(
            FINETUNES, json={"model": "@cf/mistral/mistral-7b-instruct-v0.2-lora", "name": "slow"}
        )
        finetune_id = created.json()["result"]["id"]
        conn = partial_upload(sb.port, finetune_id, 500, 5000)
        assert closed_within(conn, 5.0), "the server waited for ever for the rest of the body"
        conn.close()
        assert sb.store.list_assets(finetune_id) == []
        wait_for(lambda: not any((sb.data_dir / "tmp").iterdir()))
        assert api.get(FINETUNES).status_code == 200


def test_a_half_sent_json_body_is_closed(tmp_path: Path) -> None:
    with quick_timeouts(tmp_path) as sb:
        conn = socket.create_connection(("127.0.0.1", sb.port))
        conn.sendall(
            f"POST /client/v4{FINETUNES} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {DEFAULT_TOKEN}\r\nContent-Length: 100\r\n\r\n"
            '{"model": "@cf/m'.encode()
        )
        assert closed_within(conn, 5.0)
        conn.close()
        with client_for(sb) as api:
            assert api.get(FINETUNES).json()["result"] == []


def test_a_slow_but_steady_upload_is_not_cut(tmp_path: Path) -> None:
    # Each read waits at most read_timeout; a client that keeps sending is never cut.
    with quick_timeouts(tmp_path) as sb, client_for(sb) as api:
        created = api.post(
            FINETUNES, json={"model": "@cf/mistral/mistral-7b-instruct-v0.2-lora", "name": "drip"}
        )
        finetune_id = created.json()["result"]["id"]
        conn = partial_upload(sb.port, finetune_id, 0, 1000)
        for _ in range(8):  # 8 x 0.2 s: longer than either timeout, never silent that long
            time.sleep(0.2)
            conn.sendall(b"x" * 125)
        conn.sendall(TRAILER)
        conn.settimeout(5)
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        conn.close()


def test_timeouts_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeouts"):
        SandboxServer(tmp_path / "d", idle_timeout=0)


def test_quiet_connections_do_not_pile_up_threads(tmp_path: Path) -> None:
    with quick_timeouts(tmp_path) as sb:
        before = threading.active_count()
        conns = [socket.create_connection(("127.0.0.1", sb.port)) for _ in range(20)]
        wait_for(lambda: threading.active_count() >= before + 20)  # one thread a connection
        wait_for(lambda: threading.active_count() <= before)  # each closed after 0.3 s
        for conn in conns:
            conn.close()


# --- listening beyond loopback -------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "10.1.2.3"])
def test_the_default_token_is_refused_beyond_loopback(cli: Cli, tmp_path: Path, host: str) -> None:
    result = cli("sandbox", "--host", host, "--port", "0", "--data", tmp_path / "d")
    assert result.exit_code == 1
    assert f"refusing to listen on {host}" in result.stderr
    assert "--token" in result.stderr
    assert "Traceback" not in result.output
    # Naming the default token explicitly does not make it any less public.
    explicit = cli("sandbox", "--host", host, "--token", DEFAULT_TOKEN, "--data", tmp_path / "d")
    assert explicit.exit_code == 1 and "refusing" in explicit.stderr
    with pytest.raises(ValueError, match="refusing"):
        SandboxServer(tmp_path / "d", host=host)


def test_a_token_of_ones_own_may_listen_beyond_loopback() -> None:
    # Checked without binding: the tests only ever listen on 127.0.0.1.
    assert exposure_problem("0.0.0.0", ("my-own-long-token",)) is None
    assert exposure_problem("0.0.0.0", ("my-own-long-token", DEFAULT_TOKEN)) is not None
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
        assert exposure_problem(host, (DEFAULT_TOKEN,)) is None
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.invalid"):
        assert not is_loopback(host), host
