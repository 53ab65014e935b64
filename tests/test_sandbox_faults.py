"""Fault injection over real HTTP: errors, latency, resets, commit-then-drop, the rate limit, and
the spec grammar."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_clients import serve_process

from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from reconciler.sandbox.common.clock import ManualClock
from reconciler.sandbox.common.faults import FaultRule, FaultSpec, InjectedFault, RateLimit, Route
from reconciler.sandbox.common.throttle import Pace, SlowInput, slow_answer
from reconciler.sandbox.server import SandboxServer

FINETUNES = f"/client/v4/accounts/{DEFAULT_ACCOUNT_ID}/ai/finetunes"
CREATE_ROUTE = "POST /client/v4/accounts/*/ai/finetunes"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
COHERE_MODELS = "/v1/finetuning/finetuned-models"


def serve(tmp_path: Path, spec: str, **kwargs: Any) -> SandboxServer:
    return SandboxServer(tmp_path / "data", faults=FaultSpec.parse(spec), **kwargs)


@pytest.fixture
def raw() -> Iterator[httpx.Client]:
    # verify=False: plain HTTP on loopback, and loading CA certificates costs 30 ms a client.
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    with httpx.Client(headers=headers, timeout=10, verify=False) as client:
        yield client


def create(raw: httpx.Client, sb: SandboxServer, name: str) -> httpx.Response:
    return raw.post(sb.url + FINETUNES, json={"model": MODEL, "name": name})


def statuses(raw: httpx.Client, sb: SandboxServer, count: int) -> list[int]:
    return [create(raw, sb, f"ft-{i}").status_code for i in range(count)]


# --- error statuses ---------------------------------------------------------------------


def test_status_fault_hits_only_its_route_at_about_its_rate(
    tmp_path: Path, raw: httpx.Client
) -> None:
    spec = f"seed=7; rate=0.3; status=503; route={CREATE_ROUTE}"
    with serve(tmp_path, spec) as sb:
        codes = statuses(raw, sb, 40)
        listed = raw.get(sb.url + FINETUNES).json()["result"]
        for _ in range(5):  # another method on the same path is never hit
            assert raw.get(sb.url + FINETUNES).status_code == 200
    failures = codes.count(503)
    assert set(codes) == {200, 503}
    assert 4 <= failures <= 20  # 12 expected at 0.3
    assert len(listed) == codes.count(200)  # a refused create stores nothing
    assert [(f.kind, f.status, f.method) for f in sb.fault_log] == [("status", 503, "POST")] * (
        failures
    )
    assert all(f.rule == 0 and f.path == FINETUNES for f in sb.fault_log)


def test_cloudflare_errors_use_the_envelope_and_429_carries_retry_after(
    tmp_path: Path, raw: httpx.Client
) -> None:
    spec = "status=429; route=GET /client/v4/** | status=500; route=POST /client/v4/**"
    with serve(tmp_path, spec) as sb:
        limited = raw.get(sb.url + FINETUNES)
        broken = create(raw, sb, "x")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json() == {
        "success": False,
        "errors": [
            {"code": 971, "message": "Please wait and consider throttling your request speed"}
        ],
        "messages": [],
        "result": None,
    }
    assert broken.status_code == 500 and "retry-after" not in broken.headers
    assert broken.json()["errors"] == [{"code": 10001, "message": "Internal Server Error"}]
    assert sb.request_log == []  # neither reached the API


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (429, "too many requests, please retry later"),
        (500, "internal server error"),
        (502, "bad gateway"),
        (503, "service unavailable"),
    ],
)
def test_cohere_errors_use_its_message_shape(
    tmp_path: Path, raw: httpx.Client, status: int, text: str
) -> None:
    with serve(tmp_path, f"status={status}; retry_after=7; route=GET /v1/**") as sb:
        response = raw.get(sb.url + COHERE_MODELS)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": text}
    assert response.headers["retry-after"] == "7"


# --- latency, reset, drop ---------------------------------------------------------------


def test_latency_delays_only_matching_requests(tmp_path: Path, raw: httpx.Client) -> None:
    with serve(tmp_path, "latency=400ms; route=GET /v1/datasets") as sb:
        started = time.perf_counter()
        slow = raw.get(sb.url + "/v1/datasets")
        slow_seconds = time.perf_counter() - started
        started = time.perf_counter()
        fast = raw.get(sb.url + COHERE_MODELS)
        fast_seconds = time.perf_counter() - started
    assert slow.status_code == fast.status_code == 200  # delayed, then answered normally
    assert slow_seconds >= 0.4 > fast_seconds
    assert sb.fault_log == [InjectedFault("GET", "/v1/datasets", "latency", latency=0.4, rule=0)]


def test_bandwidth_paces_an_upload_and_stores_every_byte(tmp_path: Path, raw: httpx.Client) -> None:
    body = bytes(range(256)) * 2048  # 512 KiB
    route = "POST /client/v4/accounts/*/ai/finetunes/*/finetune-assets"
    with serve(tmp_path, f"bandwidth=1MiB/s; route={route}") as sb:
        finetune = create(raw, sb, "slow-link").json()["result"]
        started = time.perf_counter()
        answer = raw.post(
            f"{sb.url}{FINETUNES}/{finetune['id']}/finetune-assets",
            data={"file_name": "adapter_model.safetensors"},
            files={"file": ("blob", body, "application/octet-stream")},
        )
        seconds = time.perf_counter() - started
        (asset,) = sb.store.list_assets(finetune["id"])
    assert answer.status_code == 200, answer.text
    assert asset.sha256 == hashlib.sha256(body).hexdigest()  # paced, not cut
    assert seconds >= 0.45  # 512 KiB at 1 MiB/s: the pace sleeps at least this long
    (fault,) = sb.fault_log
    assert (fault.kind, fault.bandwidth, fault.method) == ("bandwidth", float(1 << 20), "POST")


def test_the_pace_sleeps_by_the_bytes_carried_both_ways() -> None:
    slept: list[float] = []
    pace = Pace(100_000, slept.append)  # 100 KB/s, in pieces of 5,000 bytes
    stream = SlowInput(io.BytesIO(b"x" * 50_000), pace)
    assert stream.read(20_000) == b"x" * 20_000  # a read gets what it asked for
    assert len(stream.read()) == 30_000
    # the sleep is stubbed, so time stands still: each wait is until its piece is due, and the
    # last piece of 50 kB at 100 kB/s is due 0.5 s after the first byte
    assert len(slept) == 10 and slept == sorted(slept) and 0.45 <= slept[-1] <= 0.5
    answer = list(slow_answer([b"y" * 12_000], Pace(100_000, slept.append)))
    assert [len(p) for p in answer] == [5000, 5000, 2000]


def test_latency_combines_with_an_error(tmp_path: Path, raw: httpx.Client) -> None:
    with serve(tmp_path, "latency=0.1s; status=502; route=/v1/**") as sb:
        started = time.perf_counter()
        assert raw.get(sb.url + "/v1/datasets").status_code == 502
        assert time.perf_counter() - started >= 0.1
    assert [f.kind for f in sb.fault_log] == ["latency", "status"]


def test_reset_cuts_the_tcp_connection_before_the_api_sees_the_request(
    tmp_path: Path, raw: httpx.Client
) -> None:
    with serve(tmp_path, f"reset; route={CREATE_ROUTE}") as sb:
        with pytest.raises(httpx.ReadError, match="reset"):  # RST: ECONNRESET, not a clean EOF
            create(raw, sb, "never-stored")
        listed = raw.get(sb.url + FINETUNES)  # the server carries on
    assert listed.json()["result"] == []
    assert sb.request_log == [("GET", FINETUNES)]
    assert [f.kind for f in sb.fault_log] == ["reset"]


def test_commit_then_drop_stores_the_change_but_loses_the_answer(
    tmp_path: Path, raw: httpx.Client
) -> None:
    spec = f"drop; route={CREATE_ROUTE} | drop; route=POST /v1/datasets"
    with serve(tmp_path, spec) as sb:
        with pytest.raises(httpx.RemoteProtocolError):
            create(raw, sb, "stored-anyway")
        [stored] = raw.get(sb.url + FINETUNES).json()["result"]
        assert stored["name"] == "stored-anyway"
        with pytest.raises(httpx.RemoteProtocolError):
            raw.post(
                sb.url + "/v1/datasets",
                params={"name": "dropped", "type": "chat-finetune-input"},
                files={"data": ("d.jsonl", b"{}\n")},
            )
        [dataset] = raw.get(sb.url + "/v1/datasets").json()["datasets"]
    assert dataset["name"] == "dropped"
    assert [(f.kind, f.method) for f in sb.fault_log] == [("drop", "POST")] * 2
    assert ("POST", FINETUNES) in sb.request_log  # it did reach the API


def test_commit_then_drop_is_seen_by_the_official_sdk_as_a_protocol_error(
    tmp_path: Path,
) -> None:
    cloudflare = pytest.importorskip("cloudflare")
    with serve(tmp_path, f"drop; route={CREATE_ROUTE}") as sb:
        client = cloudflare.Cloudflare(
            api_token=DEFAULT_TOKEN, base_url=sb.cloudflare_base_url, max_retries=0
        )
        with pytest.raises(cloudflare.APIConnectionError):
            client.ai.finetunes.create(account_id=DEFAULT_ACCOUNT_ID, model=MODEL, name="lost")
        [found] = client.ai.finetunes.list(account_id=DEFAULT_ACCOUNT_ID)
    assert found.name == "lost"


# --- determinism ------------------------------------------------------------------------


def sequence(tmp_path: Path, raw: httpx.Client, seed: int, name: str) -> list[int]:
    spec = f"seed={seed}; rate=0.5; status=503; route={CREATE_ROUTE}"
    with SandboxServer(tmp_path / name, faults=FaultSpec.parse(spec)) as sb:
        return statuses(raw, sb, 30)


def test_same_seed_same_faults_other_seed_other_faults(tmp_path: Path, raw: httpx.Client) -> None:
    first = sequence(tmp_path, raw, 7, "a")
    again = sequence(tmp_path, raw, 7, "b")
    other = sequence(tmp_path, raw, 8, "c")
    assert first == again
    assert other != first
    assert 200 in first and 503 in first


def test_each_rule_keeps_its_own_sequence_whatever_else_is_requested(
    tmp_path: Path, raw: httpx.Client
) -> None:
    spec = (
        f"seed=3; rate=0.5; status=503; route={CREATE_ROUTE} | rate=0.5; status=502; route=/v1/**"
    )
    alone = sequence(tmp_path, raw, 3, "alone")
    with SandboxServer(tmp_path / "mixed", faults=FaultSpec.parse(spec)) as sb:
        mixed = []
        for i in range(30):
            raw.get(sb.url + "/v1/datasets")  # interleaved traffic on another rule's route
            mixed.append(create(raw, sb, f"ft-{i}").status_code)
    assert mixed == alone


def test_fault_log_is_complete_under_concurrent_requests(tmp_path: Path, raw: httpx.Client) -> None:
    with serve(tmp_path, "rate=0.5; status=503; route=GET /v1/**") as sb:
        codes: list[int] = []
        lock = threading.Lock()

        def hammer() -> None:
            with httpx.Client(headers=raw.headers, verify=False) as own:
                for _ in range(10):
                    code = own.get(sb.url + "/v1/datasets").status_code
                    with lock:
                        codes.append(code)

        threads = [threading.Thread(target=hammer) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(codes) == 60
    assert len(sb.fault_log) == codes.count(503) > 0


# --- the rate limit ---------------------------------------------------------------------


def test_rate_limit_answers_429_971_with_retry_after_until_the_window_ends(
    tmp_path: Path, raw: httpx.Client
) -> None:
    clock = ManualClock()
    with serve(tmp_path, "rate_limit=3/1m", clock=clock) as sb:
        allowed = [raw.get(sb.url + FINETUNES).status_code for _ in range(3)]
        clock.advance(20)
        limited = raw.get(sb.url + FINETUNES)
        still = create(raw, sb, "x")  # every call, whatever the route
        cohere = raw.get(sb.url + COHERE_MODELS)  # Cohere routes are not Cloudflare's limit
        with httpx.Client(
            headers={"Authorization": "Bearer other-token"}, verify=False
        ) as other_token:
            other = other_token.get(sb.url + FINETUNES)
        clock.advance(40)
        after = raw.get(sb.url + FINETUNES)
    assert allowed == [200, 200, 200]
    assert limited.status_code == still.status_code == 429
    assert limited.json()["errors"] == [
        {"code": 971, "message": "Please wait and consider throttling your request speed"}
    ]
    assert limited.headers["retry-after"] == "40"
    assert cohere.status_code == 200
    assert other.status_code == 401  # its own budget: it reached the API (and is unknown)
    assert after.status_code == 200
    assert [f.kind for f in sb.fault_log] == ["rate_limit", "rate_limit"]


def test_the_cloudflare_rate_limit_is_the_published_one() -> None:
    assert FaultSpec.parse("rate_limit=cloudflare").rate_limit == RateLimit(1200, 300.0)
    assert RateLimit.cloudflare() == RateLimit(1200, 300.0)


# --- the spec grammar -------------------------------------------------------------------


def test_parse_accepts_the_compact_form() -> None:
    spec = FaultSpec.parse(
        "seed=7;rate=0.2;status=503;route=POST /client/v4/accounts/*/ai/finetunes"
        " | route=/v1/** ; rate=10% ; latency=300ms\n"
        "reset; route=GET /v1/datasets/*; rate=.5\n"
        "drop=true; route=* /v1/datasets | rate_limit=1200/5m"
    )
    assert spec.seed == 7
    assert spec.rate_limit == RateLimit(1200, 300.0)
    assert spec.rules == (
        FaultRule(route=Route("POST", "/client/v4/accounts/*/ai/finetunes"), rate=0.2, status=503),
        FaultRule(route=Route("*", "/v1/**"), rate=0.1, latency=0.3),
        FaultRule(route=Route("GET", "/v1/datasets/*"), rate=0.5, reset=True),
        FaultRule(route=Route("*", "/v1/datasets"), drop=True),
    )
    slow = FaultSpec.parse("bandwidth=15MB/s | bandwidth=512KiB; route=PUT /**; latency=1s")
    assert [r.bandwidth for r in slow.rules] == [15e6, 512 * 1024]


def test_route_globs_match_one_segment_or_many() -> None:
    one = Route.parse("post /client/v4/accounts/*/ai/finetunes")
    assert one.matches("POST", FINETUNES)
    assert not one.matches("GET", FINETUNES)
    assert not one.matches("POST", FINETUNES + "/public")
    assert not one.matches("POST", "/client/v4/accounts/a/b/ai/finetunes")
    many = Route.parse("/client/**")
    assert many.matches("DELETE", FINETUNES) and not many.matches("GET", "/v1/datasets")


MAPPING = {
    "seed": 7,
    "rate_limit": "1200/5m",
    "rules": [
        {"route": "POST /client/v4/accounts/*/ai/finetunes", "rate": 0.2, "status": 503},
        {"route": "/v1/**", "rate": 0.1, "latency": "300ms"},
        {"route": "POST /v1/datasets", "drop": True},
    ],
}


def test_parse_accepts_json_yaml_and_files(tmp_path: Path) -> None:
    expected = FaultSpec.parse(
        f"seed=7; rate_limit=1200/5m; route={CREATE_ROUTE}; rate=0.2; status=503"
        " | route=/v1/**; rate=0.1; latency=300ms | route=POST /v1/datasets; drop"
    )
    from_json = FaultSpec.parse(json.dumps(MAPPING))
    yaml_text = (
        "seed: 7\nrate_limit: {requests: 1200, window: 5m}\nrules:\n"
        f"  - route: {CREATE_ROUTE}\n    rate: 0.2\n    status: 503\n"
        "  - {route: /v1/**, rate: 0.1, latency: 300ms}\n"
        "  - {route: POST /v1/datasets, drop: yes}\n"
    )
    from_yaml = FaultSpec.parse(yaml_text)
    (tmp_path / "faults.yaml").write_text(yaml_text)
    from_file = FaultSpec.from_option(f"@{tmp_path / 'faults.yaml'}")
    assert expected == from_json == from_yaml == from_file
    assert FaultSpec.from_option("status=500").rules == (FaultRule(status=500),)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "fault spec: empty spec"),
        ("sttaus=503", "unknown key 'sttaus' in 'sttaus=503' (known: seed, rate_limit, route"),
        ("rate=1.5; status=503", "rate must be between 0 and 1, got 1.5"),
        (
            "rate=lots; status=503",
            "rate must be a number between 0 and 1 or a percentage, got 'lots'",
        ),
        ("status=200", "status must be one of 408, 409, 429, 500, 502, 503, 504, got 200"),
        ("status=oops", "status must be an integer, got 'oops'"),
        ("route=/v1/**; rate=0.5", "rule for * /v1/** has no fault"),
        ("status=503; reset", "a rule can have only one of status, reset, drop"),
        ("seed=1; status=503 | seed=2; reset", "seed given twice"),
        ("status=503; status=502", "status given twice"),
        ("latency=fast", "latency must be a duration like 250ms, 1.5s or 2m, got 'fast'"),
        ("bandwidth=fast", "bandwidth must be a rate like 15MB/s or 512KiB/s, got 'fast'"),
        ("bandwidth=15Mbit/s", "bandwidth must be a rate like 15MB/s"),
        ("bandwidth=10B/s", "bandwidth must be a finite rate of at least 1KB/s, got '10B/s'"),
        ("bandwidth=" + "9" * 400 + "GB/s", "bandwidth must be a finite rate"),
        ("route=finetunes; reset", "route path must start with '/', got 'finetunes'"),
        ("route=FETCH /v1; reset", "unknown method 'FETCH' in route 'FETCH /v1'"),
        ("route=; reset", "route must be '[METHOD] PATH'"),
        ("status", "status needs a value: status=..."),
        ("reset=maybe", "reset is a flag: write 'reset' or 'reset=true'"),
        ("rate_limit=1200", "rate_limit must be N/DURATION (e.g. 1200/5m) or cloudflare"),
        ("rate_limit=0/5m", "rate_limit needs at least 1 request per a positive window"),
        ('{"seed": 1,', "fault spec: invalid JSON"),
        ('{"rules": [{"status": 503, "when": "always"}]}', "unknown key 'when' in rule 1"),
        ('{"faults": []}', "unknown key 'faults' (known: seed, rate_limit, rules)"),
        ("- status: 503", "a JSON or YAML spec must be a mapping"),
        ("rules: [status: 503", "fault spec: invalid YAML"),
    ],
)
def test_parse_rejects_bad_specs_with_clear_messages(text: str, error: str) -> None:
    with pytest.raises(ValueError) as raised:
        FaultSpec.parse(text)
    assert str(raised.value).startswith("fault spec: ")
    assert error in str(raised.value)


def test_from_option_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"fault spec: cannot read .*missing\.yaml"):
        FaultSpec.from_option(f"@{tmp_path / 'missing.yaml'}")


def test_serve_announces_the_faults_on_its_one_line(tmp_path: Path) -> None:
    with serve_process(
        tmp_path / "data",
        ", faults=FaultSpec.parse('seed=4; status=503; route=GET /v1/**')",
        imports="from reconciler.sandbox.common.faults import FaultSpec; ",
    ) as served:
        assert "injecting faults (seed 4, 1 rule(s))" in served.line
        match = re.search(r"Cohere API at (http://127\.0\.0\.1:\d+)", served.line)
        assert match, served.line
        with httpx.Client(verify=False) as client:
            response = client.get(
                match.group(1) + COHERE_MODELS, headers={"Authorization": "Bearer serve-token"}
            )
        assert response.status_code == 503
    assert served.returncode == 0, served.err
