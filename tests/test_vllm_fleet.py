"""The servers of a vLLM fleet from the config or VLLM_SERVERS: plain URLs, dns+http names
resolved to every address (real resolution of localhost, and a stand-in resolver for
answers a test machine cannot give), and the URLs refused."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from reconciler.base.errors import CredentialsError, EndpointError
from reconciler.providers.vllm.fleet import MAX_SERVERS, Server, resolve_addresses, servers

SECRET = "hunter2-must-not-show"


class Resolver:
    """A stand-in for DNS: fixed answers, and the questions asked."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        return self.answers[host]


def urls(found: tuple[Server, ...]) -> list[str]:
    return [s.url for s in found]


def test_a_config_list_is_the_fleet_in_its_order() -> None:
    found = servers(["http://b.internal:8000", "https://a.internal/"], {})
    assert urls(found) == ["http://b.internal:8000", "https://a.internal"]
    assert found[0].origin == "providers.vllm.servers[0]"


def test_the_environment_is_read_when_the_config_names_none() -> None:
    env = {"VLLM_SERVERS": " http://10.0.0.2:8000 ,http://10.0.0.1:8000,,"}
    found = servers(None, env)
    assert urls(found) == ["http://10.0.0.2:8000", "http://10.0.0.1:8000"]
    assert [s.origin for s in found] == ["VLLM_SERVERS entry 1", "VLLM_SERVERS entry 2"]


def test_an_interpolated_string_is_split_on_commas() -> None:
    found = servers(["http://a:1,http://b:2", "http://c:3"], {"VLLM_SERVERS": "http://x:9"})
    assert urls(found) == ["http://a:1", "http://b:2", "http://c:3"]
    assert found[1].origin == "providers.vllm.servers[0] entry 2"


def test_a_trailing_v1_is_the_openai_base_and_is_taken_off() -> None:
    found = servers(["http://h:8000/v1/", "http://v1:8000", "http://h:9000/proxy/v1"], {})
    assert urls(found) == ["http://h:8000", "http://v1:8000", "http://h:9000/proxy"]


def test_the_same_server_twice_is_one_server() -> None:
    found = servers(["http://h:8000", "http://h:8000/", "HTTP://h:8000/v1"], {})
    assert urls(found) == ["http://h:8000"]


def test_no_servers_anywhere_says_where_to_name_them() -> None:
    with pytest.raises(
        CredentialsError, match=re.escape("providers.vllm.servers or set VLLM_SERVERS")
    ):
        servers(None, {})
    with pytest.raises(CredentialsError):
        servers([], {"VLLM_SERVERS": "http://ignored:1"})
    with pytest.raises(CredentialsError):
        servers(None, {"VLLM_SERVERS": " , "})


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"http://admin:{SECRET}@h:8000", "credentials before the host"),
        (f"http://h:8000/?token={SECRET}", "query string"),
        (f"http://h:8000/#{SECRET}", "query string or fragment"),
        (f"ftp://h/{SECRET}", "does not start with https://"),
        (f"http://h:8000/{SECRET}\nX", "control character"),
        (f"h:8000/{SECRET}", "does not start with https://"),
        (f"http://h:0/{SECRET}", "port 0"),
        (f"dns+http://u:{SECRET}@h:8000", "credentials before the host"),
        (f"dns+ftp://h/{SECRET}", "does not start with https://"),
    ],
)
def test_a_refused_url_is_named_by_its_place_never_shown(url: str, says: str) -> None:
    with pytest.raises(CredentialsError, match=says) as caught:
        servers(["http://fine:1", url], {})
    assert "providers.vllm.servers[1]" in str(caught.value)
    assert SECRET not in str(caught.value)
    with pytest.raises(CredentialsError) as caught:
        servers(None, {"VLLM_SERVERS": f"http://fine:1,{url}"})
    assert "VLLM_SERVERS entry 2" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_dns_names_every_address_deduplicated_and_sorted() -> None:
    resolve = Resolver({"vllm.svc": ["10.0.0.10", "fd00::2", "10.0.0.9", "10.0.0.10"]})
    found = servers(["dns+http://vllm.svc:8000/"], {}, resolve=resolve)
    assert urls(found) == [
        "http://10.0.0.9:8000",
        "http://10.0.0.10:8000",
        "http://[fd00::2]:8000",
    ]
    assert {s.origin for s in found} == {"providers.vllm.servers[0]"}
    assert resolve.asked == [("vllm.svc", 8000)]


def test_dns_keeps_the_path_and_takes_the_schemes_port_by_default() -> None:
    resolve = Resolver({"vllm.svc": ["10.0.0.1"]})
    found = servers(
        ["dns+https://vllm.svc/serve/v1", "http://10.0.0.1:80"],
        {},
        resolve=resolve,
    )
    assert urls(found) == ["https://10.0.0.1:443/serve", "http://10.0.0.1:80"]


def test_dns_resolves_for_real_on_this_machine() -> None:
    assert resolve_addresses("127.0.0.1", 8000) == ("127.0.0.1",)
    found = servers(["dns+http://localhost:8123"], {})
    assert found and all(s.url.endswith(":8123") for s in found)
    assert "http://127.0.0.1:8123" in urls(found) or "http://[::1]:8123" in urls(found)


def test_a_name_that_does_not_resolve_is_an_endpoint_error() -> None:
    with pytest.raises(EndpointError, match=re.escape("does-not-exist.invalid does not resolve")):
        servers(["dns+http://does-not-exist.invalid:8000"], {})
    with pytest.raises(EndpointError, match="resolves to no address"):
        servers(["dns+http://empty:8000"], {}, resolve=Resolver({"empty": []}))


def test_a_name_resolving_to_a_whole_subnet_is_refused() -> None:
    many = [f"10.1.{i // 256}.{i % 256}" for i in range(MAX_SERVERS + 1)]
    with pytest.raises(CredentialsError, match=f"more than {MAX_SERVERS}"):
        servers(["dns+http://big:1"], {}, resolve=Resolver({"big": many}))
    exactly = servers(["dns+http://big:1"], {}, resolve=Resolver({"big": many[:-1]}))
    assert len(exactly) == MAX_SERVERS
