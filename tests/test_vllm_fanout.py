"""One piece of work per server, side by side: results and failures kept per server, a bug
raised once all work is done; and over HTTP, a fleet with a server down and one gone, where
each fails its own load only."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_vllm_client import MODEL, free_port, serve_fleet, write_adapter

from reconciler.base.errors import (
    AuthError,
    EndpointError,
    OutcomeUnknown,
    ProviderError,
    ReconcilerError,
)
from reconciler.providers.vllm.client import VllmClient
from reconciler.providers.vllm.fanout import SHOWN_FAILURES, Fanned, Outcome, fan_out
from reconciler.providers.vllm.fleet import servers


def test_the_work_runs_side_by_side() -> None:
    together = threading.Barrier(4, timeout=5)  # broken unless all four wait at once

    def work(key: str) -> str:
        together.wait()
        return key.upper()

    fanned = fan_out(["a", "b", "c", "d"], work)
    assert fanned.ok
    assert [o.value for o in fanned.outcomes] == ["A", "B", "C", "D"]
    assert fanned.values() == {"a": "A", "b": "B", "c": "C", "d": "D"}


def test_workers_bound_how_many_run_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def work(key: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return key

    assert fan_out(list(range(12)), work, workers=3).ok
    assert most[0] <= 3
    assert fan_out([], work) == Fanned(())


def test_a_failure_is_its_servers_own() -> None:
    def work(key: str) -> int:
        if key == "down":
            raise EndpointError(f"{key}: cannot reach it")
        return len(key)

    fanned = fan_out(["up", "down", "also-up"], work)
    assert not fanned.ok
    assert fanned.values() == {"up": 2, "also-up": 7}
    assert list(fanned.errors()) == ["down"]
    assert [o.key for o in fanned.outcomes] == ["up", "down", "also-up"]
    failed = fanned.outcomes[1]
    assert isinstance(failed, Outcome) and failed.value is None and failed.seconds >= 0


def test_a_bug_is_raised_once_every_server_is_done() -> None:
    finished: list[str] = []

    def work(key: str) -> None:
        if key == "bug":
            raise KeyError("a bug, not a server's failure")
        time.sleep(0.1)
        finished.append(key)

    with pytest.raises(KeyError, match="a bug"):
        fan_out(["bug", "a", "b"], work)
    assert sorted(finished) == ["a", "b"]


def test_each_server_once() -> None:
    with pytest.raises(ValueError, match="each server once"):
        fan_out(["a", "a"], lambda key: key)


@pytest.mark.parametrize(
    ("raised", "combined"),
    [
        ([EndpointError("x down"), EndpointError("y down")], EndpointError),
        ([AuthError("x key"), AuthError("y key")], AuthError),
        ([EndpointError("x down"), OutcomeUnknown("y lost")], OutcomeUnknown),
        ([EndpointError("x down"), AuthError("y key")], ProviderError),
        ([EndpointError("x down"), ReconcilerError("y odd")], ProviderError),
    ],
)
def test_failures_combine_into_the_error_that_says_what_to_do(
    raised: list[ReconcilerError], combined: type[ReconcilerError]
) -> None:
    errors = dict(zip(["x", "y"], raised, strict=True))

    def work(key: str) -> None:
        if key in errors:
            raise errors[key]

    fanned = fan_out(["x", "y", "z"], work)
    with pytest.raises(combined) as caught:
        fanned.raise_failures("load adapter")
    assert type(caught.value) is combined
    message = str(caught.value)
    assert message.startswith("load adapter: 2 of 3 servers failed:")
    assert all(str(e) in message for e in raised)
    fan_out(["z"], work).raise_failures("nothing failed")


def test_a_long_list_of_failures_is_cut() -> None:
    keys = [f"s{i}" for i in range(SHOWN_FAILURES + 3)]

    def work(key: str) -> None:
        raise EndpointError(f"{key} down")

    with pytest.raises(EndpointError, match="and 3 more") as caught:
        fan_out(keys, work).raise_failures("health")
    assert f"s{SHOWN_FAILURES}" not in str(caught.value)


def test_over_http_a_down_and_a_gone_server_fail_their_own_loads_only(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "store" / "support-0123456789ab")
    with serve_fleet(tmp_path, vllm_replicas=3, vllm_load_latency=0.3) as fleet:
        fleet.control(1, "down")
        gone = f"http://127.0.0.1:{free_port()}"
        servers = [*fleet.urls(3), gone]

        def load(url: str) -> None:
            with VllmClient(url) as client:
                client.load("support", str(adapter))

        started = time.monotonic()
        fanned = fan_out(servers, load)
        assert time.monotonic() - started < 0.85  # three loads of 0.3 s each, side by side
        assert list(fanned.values()) == [fleet.url(0), fleet.url(2)]
        errors = fanned.errors()
        assert isinstance(errors[fleet.url(1)], OutcomeUnknown)
        assert isinstance(errors[gone], EndpointError)
        assert not isinstance(errors[gone], OutcomeUnknown)

        def adapters(url: str) -> tuple[str, ...]:
            with VllmClient(url) as client:
                return tuple(card.id for card in client.models().adapters)

        listed = fan_out(servers, adapters)
        assert listed.values() == {fleet.url(0): ("support",), fleet.url(2): ("support",)}
        with pytest.raises(EndpointError, match="2 of 4 servers failed") as caught:
            listed.raise_failures("list models")
        assert gone in str(caught.value) and fleet.url(1) in str(caught.value)


def test_a_fleet_named_by_dns_is_read_server_by_server(tmp_path: Path) -> None:
    """localhost resolved for real: the sandbox listens on 127.0.0.1 only, so an IPv6 address
    of localhost, where this machine has one, is a server that fails on its own."""
    with serve_fleet(tmp_path, vllm_replicas=1) as fleet:
        port = fleet.root.split(":")[2].split("/")[0]
        found = servers([f"dns+http://localhost:{port}/vllm/0/v1"], {})
        urls = [s.url for s in found]
        assert fleet.url(0) in urls

        def bases(url: str) -> tuple[str, ...]:
            with VllmClient(url) as client:
                return tuple(card.id for card in client.models().bases)

        fanned = fan_out(urls, bases)
        assert fanned.values() == {fleet.url(0): (MODEL,)}
        assert all(isinstance(e, EndpointError) for e in fanned.errors().values())
