"""The sandbox's vLLM fleet as a fleet: replicas that know nothing of each other, the sandbox's
restart / down / up controls, load latency, loads cut off by a restart or an outage, and the
engine's LRU of adapters, which re-reads an evicted adapter's folder from disk."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from test_sandbox_vllm import CHAT, LOAD, MODEL, Fleet, chat, serve_fleet, write_adapter


def _load(fleet: Fleet, index: int, name: str, folder: Path) -> httpx.Response:
    body = {"lora_name": name, "lora_path": str(folder)}
    return fleet.http.post(f"{fleet.url}/{index}{LOAD}", json=body)


def _names(fleet: Fleet, index: int) -> list[str]:
    cards = fleet.http.get(f"{fleet.url}/{index}/v1/models").json()["data"]
    return [card["id"] for card in cards]


def _ref(fleet: Fleet, index: int, model: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "Where is my parcel?"}]}
    response = fleet.http.post(f"{fleet.url}/{index}{CHAT}", json=body)
    assert response.status_code == 200, response.text
    text: str = response.json()["choices"][0]["message"]["content"]
    return text.rsplit("[ref ", 1)[1]


def test_each_replica_has_its_own_adapters(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "support")
    with serve_fleet(tmp_path, vllm_replicas=3) as fleet:
        assert _load(fleet, 1, "support", folder).status_code == 200
        assert [_names(fleet, i) for i in range(3)] == [
            [MODEL],
            [MODEL, "support"],
            [MODEL],
        ]
        # the same files answer alike on any replica that loaded them
        assert _load(fleet, 2, "support", folder).status_code == 200
        assert _ref(fleet, 1, "support") == _ref(fleet, 2, "support")


def test_restart_forgets_every_adapter_and_needs_a_sandbox_token(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "support")
    with serve_fleet(tmp_path, vllm_api_key="the-vllm-key") as fleet:
        with fleet.replica(0, api_key="the-vllm-key") as client:
            client.post(LOAD, json={"lora_name": "support", "lora_path": str(folder)})
        url = f"{fleet.url}/0/_sandbox/restart"
        assert fleet.http.post(url).status_code == 401
        # the replica's API key is not a sandbox token
        vllm_key = {"Authorization": "Bearer the-vllm-key"}
        assert fleet.http.post(url, headers=vllm_key).status_code == 401
        assert fleet.control(0, "state").json()["adapters"] == ["support"]
        restarted = fleet.control(0, "restart")
        assert restarted.status_code == 200
        assert restarted.json() == {"replica": 0, "up": True, "down_mode": None, "adapters": []}
        with fleet.replica(0, api_key="the-vllm-key") as client:
            assert [c["id"] for c in client.get("/v1/models").json()["data"]] == [MODEL]
            assert chat(client, "support", "hi").status_code == 404


def test_a_down_replica_closes_connections_until_it_is_up_again(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "support")
    with serve_fleet(tmp_path) as fleet:
        _load(fleet, 0, "support", folder)
        assert fleet.control(0, "down").json()["down_mode"] == "closed"
        with fleet.replica(0) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/health")
            with pytest.raises(httpx.RemoteProtocolError):
                client.post(LOAD, json={"lora_name": "x", "lora_path": str(folder)})
        assert _names(fleet, 1) == [MODEL]  # the others answer
        assert fleet.control(0, "state").json()["up"] is False
        assert fleet.control(0, "up").json()["up"] is True
        assert _names(fleet, 0) == [MODEL, "support"]  # an outage, not a restart


def test_a_replica_can_be_down_behind_a_503(tmp_path: Path) -> None:
    with serve_fleet(tmp_path) as fleet:
        assert fleet.control(0, "down", {"mode": "503"}).status_code == 200
        with fleet.replica(0) as client:
            health = client.get("/health")
            assert (health.status_code, health.content) == (503, b"")
            assert client.get("/v1/models").status_code == 503
        assert fleet.control(0, "down", {"mode": "sideways"}).status_code == 400


def test_loads_take_their_latency_and_overlap_across_names(tmp_path: Path) -> None:
    folders = [write_adapter(tmp_path / f"a{i}") for i in range(4)]
    with serve_fleet(tmp_path, vllm_load_latency=[0.5, 0.0]) as fleet:
        started = time.monotonic()
        assert _load(fleet, 1, "quick", folders[0]).status_code == 200
        assert time.monotonic() - started < 0.4
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(_load, fleet, 0, f"a{i}", folders[i]) for i in range(4)]
            statuses = [job.result().status_code for job in jobs]
        elapsed = time.monotonic() - started
        assert statuses == [200] * 4
        assert 0.5 <= elapsed < 1.5  # one after the other would take 2 s
        # two loads of one name: the second waits for the first, then finds it loaded
        with ThreadPoolExecutor(2) as pool:
            jobs = [pool.submit(_load, fleet, 0, "same", folders[0]) for _ in range(2)]
            statuses = sorted(job.result().status_code for job in jobs)
        assert statuses == [200, 400]
        assert sorted(_names(fleet, 0)[1:]) == ["a0", "a1", "a2", "a3", "same"]


def test_a_load_cut_by_a_restart_is_lost_with_its_connection(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "slow")
    with serve_fleet(tmp_path, vllm_load_latency=1.0) as fleet:
        outcome: list[object] = []

        def load() -> None:
            try:
                outcome.append(_load(fleet, 0, "slow", folder))
            except httpx.TransportError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.3)
        fleet.control(0, "restart")
        worker.join(timeout=10)
        assert isinstance(outcome[0], httpx.RemoteProtocolError)
        assert _names(fleet, 0) == [MODEL]


def test_a_load_during_an_outage_happens_but_its_answer_is_lost(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "slow")
    with serve_fleet(tmp_path, vllm_load_latency=1.0) as fleet:
        outcome: list[object] = []

        def load() -> None:
            try:
                outcome.append(_load(fleet, 0, "slow", folder))
            except httpx.TransportError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.3)
        fleet.control(0, "down")
        worker.join(timeout=10)
        assert isinstance(outcome[0], httpx.RemoteProtocolError)
        assert fleet.control(0, "state").json()["adapters"] == ["slow"]


def test_an_evicted_adapter_is_read_again_from_its_folder(tmp_path: Path) -> None:
    first = write_adapter(tmp_path / "first")
    second = write_adapter(tmp_path / "second")
    with serve_fleet(tmp_path) as fleet:  # --max-loras 1: the engine holds one adapter
        _load(fleet, 0, "first", first)
        before = _ref(fleet, 0, "first")
        _load(fleet, 0, "second", second)  # evicts "first"
        write_adapter(first, fill=0.5)  # new weights under the same path
        assert _ref(fleet, 0, "first") != before  # re-read: the new weights answer
        for path in first.iterdir():
            path.unlink()
        _ref(fleet, 0, "second")  # evicts "first" again
        with fleet.replica(0) as client:
            gone = chat(client, "first", "hello")
        assert gone.status_code == 500
        assert "No adapter found" in gone.json()["error"]["message"]


def test_a_cached_adapter_keeps_the_weights_it_loaded(tmp_path: Path) -> None:
    first = write_adapter(tmp_path / "first")
    second = write_adapter(tmp_path / "second")
    with serve_fleet(tmp_path, vllm_max_loras=2) as fleet:
        _load(fleet, 0, "first", first)
        before = _ref(fleet, 0, "first")
        _load(fleet, 0, "second", second)
        write_adapter(first, fill=0.5)
        assert _ref(fleet, 0, "first") == before


def test_many_concurrent_loads_on_one_replica(tmp_path: Path) -> None:
    folders = [write_adapter(tmp_path / f"n{i}") for i in range(24)]
    with serve_fleet(tmp_path, vllm_max_loras=4) as fleet:
        with ThreadPoolExecutor(8) as pool:
            jobs = [pool.submit(_load, fleet, 0, f"n{i}", f) for i, f in enumerate(folders)]
            assert {job.result().status_code for job in jobs} == {200}
        assert sorted(_names(fleet, 0)[1:]) == sorted(f"n{i}" for i in range(24))
