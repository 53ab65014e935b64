"""The servers of a vLLM fleet: base URLs from the config or the environment.

Where they come from, the first that names any:

- the config's `servers:` (a list of URLs, or one string such as "${VLLM_SERVERS}"), then
- VLLM_SERVERS, comma-separated.

Every entry is split on commas (a list item may be "${VLLM_SERVERS}") and is either

- a base URL, `http(s)://host[:port][/path]`: one server. Its root, where vLLM serves /health
  and /v1/...; a trailing `/v1` (the OpenAI client's base URL) is taken off; or
- `dns+http://name:port` (or `dns+https`): every address the name resolves to, one server each
  (a headless Kubernetes service, a DNS round robin), deduplicated and sorted.

Each URL is checked as an endpoint from the environment is (base/credentials.url_problem):
http or https only, no credentials before the host, no query or fragment, no control character;
the messages name the entry, never its text, as a URL may carry a secret.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from reconciler.base.credentials import url_problem
from reconciler.base.errors import CredentialsError, EndpointError
from reconciler.providers.vllm.env import API_KEY_ENV, SERVERS_ENV

MAX_SERVERS = 256  # a fleet larger than this is a mistake (a name resolving to a whole subnet)
DNS_SCHEMES = {"dns+http": "http", "dns+https": "https"}
DEFAULT_PORTS = {"http": 80, "https": 443}

# (host, port) -> the addresses it resolves to, as text ("10.0.0.7", "fd00::7")
Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class Server:
    url: str  # the server's root: http(s)://host[:port][/path], no trailing slash
    origin: str  # where it was named: "providers.vllm.servers[1]", "VLLM_SERVERS entry 2"


@dataclass(frozen=True)
class _Entry:
    text: str
    where: str


def resolve_addresses(host: str, port: int) -> tuple[str, ...]:
    """Every address `host` resolves to for TCP, in the same order on every run, whatever
    order DNS answers in."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        raise EndpointError(f"the vLLM servers' name {host} does not resolve ({reason})") from None
    return ordered(str(info[4][0]) for info in found)


def ordered(addresses: Iterable[str]) -> tuple[str, ...]:
    """Deduplicated and sorted: IPv4 first, then IPv6, each by number."""
    return tuple(sorted(set(addresses), key=_address_key))


def _address_key(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return (9, 0, address)
    return (ip.version, int(ip), address)


def _entries(configured: str | Sequence[str] | None, env: Mapping[str, str]) -> list[_Entry]:
    """Each non-empty comma-separated entry, with the place that named it."""
    if configured is not None and not isinstance(configured, str):
        items = [(str(text), f"providers.vllm.servers[{i}]") for i, text in enumerate(configured)]
    elif configured is not None:
        items = [(configured, "providers.vllm.servers")]
    else:
        items = [(env.get(SERVERS_ENV, ""), SERVERS_ENV)]
    entries: list[_Entry] = []
    for text, where in items:
        parts = [p.strip() for p in text.split(",")]
        several = len([p for p in parts if p]) > 1
        for n, part in enumerate(p for p in parts if p):
            entries.append(_Entry(part, f"{where} entry {n + 1}" if several else where))
    return entries


def _checked(url: str, where: str) -> str:
    """The URL, checked and made a server root (CredentialsError naming `where`)."""
    problem = url_problem(where, url, API_KEY_ENV)
    if problem:
        raise CredentialsError(problem)
    scheme, _, rest = url.partition("://")
    root = f"{scheme.lower()}://{rest}".rstrip("/")
    if urlsplit(root).path.endswith("/v1"):  # the OpenAI client's base URL: vLLM's is above it
        root = root[: -len("/v1")].rstrip("/")
    return root


def _expand(entry: _Entry, resolve: Resolver) -> list[str]:
    """The server root(s) one entry names."""
    scheme, sep, rest = entry.text.partition("://")
    dns_scheme = DNS_SCHEMES.get(scheme.lower()) if sep else None
    if dns_scheme is None:
        return [_checked(entry.text, entry.where)]
    plain = _checked(f"{dns_scheme}://{rest}", entry.where)
    parts = urlsplit(plain)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[dns_scheme]
    addresses = ordered(resolve(host, port))
    if not addresses:
        raise EndpointError(f"{entry.where}: the name {host} resolves to no address")
    return [f"{dns_scheme}://{_host(a)}:{port}{parts.path}".rstrip("/") for a in addresses]


def _host(address: str) -> str:
    """An address as a URL's host: IPv6 in brackets, a zone id's % escaped."""
    return f"[{address.replace('%', '%25')}]" if ":" in address else address


def servers(
    configured: str | Sequence[str] | None,
    env: Mapping[str, str],
    *,
    resolve: Resolver = resolve_addresses,
) -> tuple[Server, ...]:
    """The fleet's servers, in the order named (a name's addresses sorted), each once."""
    entries = _entries(configured, env)
    if not entries:
        raise CredentialsError(
            f"no vLLM servers: list them in providers.vllm.servers or set {SERVERS_ENV} "
            "(comma-separated base URLs, or dns+http://name:port for every address of a name)"
        )
    found: dict[str, Server] = {}
    for entry in entries:
        for url in _expand(entry, resolve):
            found.setdefault(url, Server(url, entry.where))
            if len(found) > MAX_SERVERS:
                raise CredentialsError(
                    f"{entry.where}: more than {MAX_SERVERS} vLLM servers; is that the fleet?"
                )
    return tuple(found.values())
