"""What reconciler treats as a secret, in one place, and the checks a credential or an endpoint
from the environment passes before any request is made.

Every message here names the variable and what is wrong with it, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# The variables a provider reads its credential from are named, by every provider's convention,
# *_API_TOKEN or *_API_KEY (CLOUDFLARE_API_TOKEN, FIREWORKS_API_KEY, VLLM_API_KEY, ...): those are
# redacted from a shorter length than other secret-looking names. No provider is named here:
# a provider package declares its own variables (ProviderSpec), and they fit these rules.
_TOKEN_NAME = re.compile(r"[A-Z0-9_]*_API_(?:TOKEN|KEY)")
# The variables naming an endpoint (*_URL, *_ENDPOINT, *_SERVERS: a comma-separated list of
# URLs): a URL may carry credentials (user:password@, ?token=).
_URL_NAME = re.compile(r"[A-Z0-9_]*_(?:URL|ENDPOINT|SERVERS)")
# Any other variable whose name says it holds a secret (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY,
# DB_PASSWORD, OPENAI_API_KEY, ...): a config may not interpolate it either.
_SECRET_WORD = re.compile(
    r"(?:.*_)?(?:TOKEN|TOKENS|SECRET|SECRETS|PASSWORD|PASSWD|CREDENTIAL|CREDENTIALS|APIKEY"
    r"|(?:API|PRIVATE|ACCESS|SECRET|SIGNING|AUTH)_KEY)(?:_.*)?",
)
# Shorter values would blank out ordinary words (no real token is that short); a variable that
# is only named like a secret must hold a longer one to be redacted.
MIN_REDACTED, MIN_REDACTED_OTHER = 4, 8


def is_secret(name: str) -> bool:
    """Whether reconciler treats the variable `name` as a secret."""
    return _SECRET_WORD.fullmatch(name.upper()) is not None


def _token_variable(name: str) -> bool:
    return _TOKEN_NAME.fullmatch(name) is not None


def secret_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The secret variables set in `env` (name -> value), those long enough to look for."""
    return {
        k: v
        for k, v in env.items()
        if is_secret(k)
        and len(v.strip()) >= (MIN_REDACTED if _token_variable(k) else MIN_REDACTED_OTHER)
    }


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Every secret value in `env`, longest first: what logs and messages must never show."""
    found = set(secret_variables(env).values())
    for variable, value in env.items():
        if _URL_NAME.fullmatch(variable):
            for url in value.split(","):
                found.update(s for s in _url_secrets(url) if len(s) >= MIN_REDACTED)
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by ***, in any case: an API may echo a token
    upper-cased or lower-cased, and shown so it is as good as the token to whoever reads it
    (most tokens are case-sensitive, but one that is not would be readable)."""
    for secret in secrets:
        text = _spelt(secret).sub("***", text)
        stripped = secret.strip()
        if stripped != secret and len(stripped) >= MIN_REDACTED:
            text = _spelt(stripped).sub("***", text)
    return text


def redact_json(value: Any, secrets: Sequence[str]) -> Any:
    """A parsed JSON document with every secret redacted from every string in it, keys
    included (an API's answer: a token given back as a finetune's name or description).
    Lists and objects are changed in place, walked without recursion: however deep the
    document, this cannot exhaust the stack."""
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key in list(node):
                clean = redact(key, secrets) if isinstance(key, str) else key
                item = node.pop(key) if clean != key else node[key]
                node[clean] = redact(item, secrets) if isinstance(item, str) else item
                if isinstance(item, dict | list):
                    pending.append(item)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = redact(item, secrets)
                elif isinstance(item, dict | list):
                    pending.append(item)
    return value


@lru_cache(maxsize=32)
def _spelt(secret: str) -> re.Pattern[str]:
    return re.compile(re.escape(secret), re.IGNORECASE)


def _url_secrets(url: str) -> list[str]:
    """A password in the URL's userinfo and the values of secret-looking query parameters."""
    try:
        parts = urlsplit(url.strip())
        found = [parts.password or ""]
        found += [v for k, v in parse_qsl(parts.query) if _secret_parameter(k)]
    except ValueError:
        return []
    return [s for s in found if s]


def _secret_parameter(key: str) -> bool:
    return key.lower() in _SECRET_PARAMETERS or is_secret(key.upper())


_SECRET_PARAMETERS = frozenset({"key", "token", "auth", "sig", "signature", "pass", "secret"})


def token_problem(variable: str, value: str) -> str | None:
    """What makes `value` unusable as the token in `variable`, or None. An HTTP header value
    is visible ASCII: anything else would be refused by the HTTP library after the request
    was built, with the header (the token) in its message."""
    if re.fullmatch(r"[\x21-\x7e]+", value):
        return None
    if not value.strip():
        what = "is empty" if not value else "holds only whitespace"
    elif value.endswith(("\n", "\r")):
        what = "ends with a line break (as `echo` or a file's last line adds)"
    elif value != value.strip():
        what = "starts or ends with whitespace"
    elif any(ch.isspace() for ch in value):
        what = "contains whitespace"
    elif any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        what = "contains a control character"
    else:
        what = "contains a character outside printable ASCII"
    return (
        f"{variable} {what}; a token is printable ASCII without spaces. It was not sent: "
        f"export it again without that (e.g. {variable}=\"$(tr -d '[:space:]' < token-file)\")"
    )


def url_problem(variable: str, value: str, token_variable: str) -> str | None:
    """What makes `value` unusable as the base URL in `variable`, or None."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return f"{variable} contains a line break or another control character; set it again"
    if any(ch.isspace() for ch in value):
        return f"{variable} contains whitespace; set it again without"
    if not value.isascii():
        return (
            f"{variable} contains a character outside ASCII; write the host in its ASCII "
            "(xn--) form and percent-encode the path"
        )
    shape = "a base URL is http(s)://host[:port][/path]"
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return f"{variable} is not a valid URL (its port or host cannot be read); {shape}"
    if parts.scheme not in ("http", "https"):
        return f"{variable} does not start with https:// (or http:// for a local endpoint); {shape}"
    if "@" in parts.netloc:
        return (
            f"{variable} carries credentials before the host (user:password@); reconciler "
            f"sends the token from {token_variable} and refuses credentials in the URL, "
            "where they would be shown in messages and recorded in the lockfile"
        )
    if parts.query or parts.fragment or "?" in value or "#" in value:
        return (
            f"{variable} has a query string or fragment (?... or #...); {shape}, and a token "
            f"belongs in {token_variable}"
        )
    if not parts.hostname:
        return f"{variable} names no host; {shape}"
    if not port_ok:
        return f"{variable} has port 0; {shape}"
    return None
