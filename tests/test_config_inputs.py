"""Odd config inputs: ${VAR} nesting and secrets, names with line breaks, files that are not
files, documents nested without end. Each gets one clear problem, never a hang or a crash."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from conftest import ACCOUNT, CANARY_TOKEN
from test_config import ENV, problems, write

from reconciler.base.credentials import is_secret
from reconciler.config.interpolate import MAX_NESTING, expand
from reconciler.providers.registry import load_config

BODY = """
version: 1
providers:
  cloudflare:
    account_id: ${CLOUDFLARE_ACCOUNT_ID}
finetunes:
  - name: one
    provider: cloudflare
    model: "@cf/mistral/mistral-7b-instruct-v0.2-lora"
    description: DESCRIPTION
    adapter: a
"""


def with_description(tmp_path: Path, description: str) -> Path:
    return write(tmp_path, BODY.replace("DESCRIPTION", description))


@pytest.mark.parametrize(
    ("description", "env", "expected"),
    [
        ("${RC_A:-${RC_B}}", {"RC_B": "b"}, "b"),
        ("${RC_A:-${RC_B}}", {"RC_A": "a", "RC_B": "b"}, "a"),
        ("${RC_A:-${RC_B:-deep}}", {}, "deep"),
        ("x${RC_A:-${RC_B:-}}y", {}, "xy"),
        ("${RC_A:-pre ${RC_B} post}", {"RC_B": "b"}, "pre b post"),
        ("$${RC_A} and ${RC_A:-$${literal}}", {}, "${RC_A} and ${literal}"),
        ("'a } b ${RC_A:-c}'", {}, "a } b c"),
        ("${RC_A}", {"RC_A": "${RC_B}"}, "${RC_B}"),  # a value is data, never expanded again
    ],
)
def test_nested_defaults(
    tmp_path: Path, description: str, env: dict[str, str], expected: str
) -> None:
    path = with_description(tmp_path, description)
    (one,) = load_config(path, {**ENV, **env}).finetunes
    assert one.description == expected


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        (
            "${RC_A:-${RC_UNSET}}",
            "environment variable RC_UNSET is not set (referenced as ${RC_UNSET}); "
            "set it or write ${RC_UNSET:-default}",
        ),
        (
            "'${1x}'",
            "'${' at character 1 does not start a reference; write ${NAME} or "
            "${NAME:-default} (NAME: letters, digits and '_'), or $${ for a literal ${",
        ),
        (
            "'costs ${RC_A'",
            "${RC_A at character 7 is not closed: expected '}' or ':-default}' after the name; "
            "write ${NAME} or ${NAME:-default} (NAME: letters, digits and '_'), or $${ for a "
            "literal ${",
        ),
        (
            "'${RC_A:-${RC_B}'",
            "${RC_A at character 1 is not closed: expected '}' or ':-default}' after the name; "
            "write ${NAME} or ${NAME:-default} (NAME: letters, digits and '_'), or $${ for a "
            "literal ${",
        ),
        (
            "'" + "${RC_A:-" * 10 + "x" + "}" * 10 + "'",
            f"references nested more than {MAX_NESTING} deep in defaults (at character 65); "
            "write ${NAME} or ${NAME:-default} (NAME: letters, digits and '_'), or $${ for a "
            "literal ${",
        ),
    ],
    ids=["unset-inner", "not-a-name", "unclosed", "unclosed-nested", "too-deep"],
)
def test_malformed_references_are_refused_at_their_line(
    tmp_path: Path, description: str, expected: str
) -> None:
    path = with_description(tmp_path, description)
    assert problems(path) == [f"{path}:9:18: error: finetunes[0].description: {expected}"]


@pytest.mark.parametrize(
    "reference",
    [
        "${CLOUDFLARE_API_TOKEN}",
        "${CO_API_KEY}",
        "${CLOUDFLARE_API_KEY}",
        "${GITHUB_TOKEN}",
        "${RC_UNSET:-${CLOUDFLARE_API_TOKEN}}",
        "${CLOUDFLARE_API_TOKEN:-not used}",
        "prefix ${AWS_SECRET_ACCESS_KEY} suffix",
    ],
)
def test_a_secret_is_never_interpolated(tmp_path: Path, reference: str) -> None:
    env = {
        **ENV,
        "CLOUDFLARE_API_TOKEN": CANARY_TOKEN,
        "CLOUDFLARE_API_KEY": CANARY_TOKEN,
        "CO_API_KEY": CANARY_TOKEN,
        "GITHUB_TOKEN": CANARY_TOKEN,
        "AWS_SECRET_ACCESS_KEY": CANARY_TOKEN,
    }
    path = with_description(tmp_path, f"'{reference}'")
    found = problems(path, env)
    name = reference.split("${")[-1].split("}")[0].split(":-")[0]
    assert found == [
        f"{path}:9:18: error: finetunes[0].description: ${{{name}}} would copy a secret into "
        f"the config: reconciler treats {name} as a credential, which it reads from the "
        "environment itself and which would otherwise be shown in plans and saved in plan "
        "files; remove the reference"
    ]
    assert CANARY_TOKEN not in "".join(found)


def test_a_value_holding_a_secret_is_refused(tmp_path: Path) -> None:
    env = {**ENV, "CLOUDFLARE_API_TOKEN": CANARY_TOKEN, "RC_COPY": f"x{CANARY_TOKEN}x"}
    for description in (CANARY_TOKEN, "${RC_COPY}"):
        path = with_description(tmp_path / description[:6], description)
        assert problems(path, env) == [
            f"{path}:9:18: error: finetunes[0].description: holds the value of "
            "CLOUDFLARE_API_TOKEN, a secret; a config is shown in plans and saved in plan "
            "files: remove it"
        ]


def test_what_counts_as_a_secret() -> None:
    for name in ("CLOUDFLARE_API_TOKEN", "CO_API_KEY", "HF_TOKEN", "DB_PASSWORD", "OPENAI_API_KEY"):
        assert is_secret(name), name
    for name in ("CLOUDFLARE_ACCOUNT_ID", "HOME", "PWD", "TOKENIZERS_PARALLELISM", "CO_API_URL"):
        assert not is_secret(name), name
    assert expand("${CLOUDFLARE_ACCOUNT_ID}", ENV).value == ACCOUNT


@pytest.mark.parametrize(
    ("old", "new", "where", "what"),
    [
        (
            "name: one",
            'name: "one\\n"',
            "6:11",
            "finetunes[0].name: 'one\\n' is not allowed: a name is one line, without a line break",
        ),
        (
            'model: "@cf/mistral/mistral-7b-instruct-v0.2-lora"',
            'model: "@cf/mistral/mistral-7b-instruct-v0.2-lora\\n"',
            "8:12",
            "finetunes[0].model: '@cf/mistral/mistral-7b-instruct-v0.2-lora\\n' is not "
            "allowed: a model name is one line, without a line break",
        ),
        (
            "account_id: ${CLOUDFLARE_ACCOUNT_ID}",
            'account_id: "${CLOUDFLARE_ACCOUNT_ID}\\n"',
            "4:17",
            f"providers.cloudflare.account_id: '{ACCOUNT}\\n' is not allowed: an account id "
            "is one line, without a line break",
        ),
    ],
    ids=["name", "model", "account"],
)
def test_a_trailing_newline_does_not_pass_a_pattern(
    tmp_path: Path, old: str, new: str, where: str, what: str
) -> None:
    path = write(tmp_path, BODY.replace("DESCRIPTION", "d").replace(old, new))
    assert problems(path) == [f"{path}:{where}: error: {what}"]


def test_a_name_from_a_variable_with_a_trailing_newline(tmp_path: Path) -> None:
    path = write(tmp_path, BODY.replace("DESCRIPTION", "d").replace("name: one", "name: ${RC_N}"))
    assert problems(path, {**ENV, "RC_N": "one\n"}) == [
        f"{path}:6:11: error: finetunes[0].name: 'one\\n' is not allowed: a name is one line, "
        "without a line break"
    ]


def run_with_deadline(fn: object, seconds: float) -> list[str]:
    """problems(...) in a thread: a hang fails the test instead of blocking the suite."""
    found: list[object] = []
    thread = threading.Thread(target=lambda: found.append(fn()), daemon=True)  # type: ignore[operator]
    thread.start()
    thread.join(seconds)
    assert found, f"still running after {seconds} s"
    return found[0]  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/dev/zero", "is a character device, expected a regular YAML file"),
        ("/dev/null", "is a character device, expected a regular YAML file"),
    ],
)
def test_devices_are_refused_without_reading(path: str, expected: str) -> None:
    started = time.monotonic()
    found = run_with_deadline(lambda: problems(Path(path)), 10)
    assert found == [f"{path}: error: {expected}"]
    assert time.monotonic() - started < 5


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "finetunes.yaml"
    os.mkfifo(fifo)
    found = run_with_deadline(lambda: problems(fifo), 10)
    assert found == [f"{fifo}: error: is a named pipe (FIFO), expected a regular YAML file"]


def test_crlf_config_reads_as_before(tmp_path: Path) -> None:
    path = write(tmp_path, BODY.replace("DESCRIPTION", "d"))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    (one,) = load_config(path, ENV).finetunes
    assert one.description == "d" and one.mark is not None and one.mark.line == 6


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ("finetunes: " + "[" * 5000 + "]" * 5000, "2:1011"),
        ("finetunes: " + "[" * 500 + "]" * 500, "2:76"),
        ("finetunes:\n" + "".join(" " * i + "-\n" for i in range(1, 3000)) + "   x\n", "1001:1000"),
        ("finetunes: &a [*a]", "2:12"),
        ("finetunes: &a {x: *a}", "2:12"),
    ],
    ids=["flow-5000", "flow-500", "block-3000", "alias-in-itself", "alias-in-mapping"],
)
def test_deep_nesting_is_refused(tmp_path: Path, document: str, where: str) -> None:
    path = tmp_path / "finetunes.yaml"
    path.write_text("version: 1\n" + document + "\n")
    assert problems(path) == [
        f"{path}:{where}: error: values nested more than 64 levels deep (or a YAML alias "
        "inside itself); refused"
    ]
