"""validate: every problem at once, each at its file, line and column, and no network."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import ACCOUNT, QUICKSTART, Cli

from reconciler.base.errors import ConfigError
from reconciler.providers.registry import load_config

ENV = {"CLOUDFLARE_ACCOUNT_ID": ACCOUNT}


def write(tmp_path: Path, body: str, adapters: tuple[str, ...] = ("a",)) -> Path:
    for name in adapters:
        shutil.copytree(QUICKSTART / "adapters" / "support-v3", tmp_path / name)
    path = tmp_path / "finetunes.yaml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, ENV if env is None else env)
    return [str(p) for p in info.value.problems]


def test_valid_config_loads_resolved(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        providers:
          cloudflare:
            account_id: ${CLOUDFLARE_ACCOUNT_ID}
        finetunes:
          - name: one
            provider: cloudflare
            model: "@cf/mistral/mistral-7b-instruct-v0.2-lora"
            description: ${DESC:-a default}
            adapter: a
        """,
    )
    desired = load_config(path, ENV)
    (one,) = desired.finetunes
    assert one.account == ACCOUNT
    assert one.description == "a default"
    assert one.public is False
    assert [a.name for a in one.assets] == ["adapter_config.json", "adapter_model.safetensors"]
    assert one.assets[0].path == tmp_path / "a" / "adapter_config.json"
    assert one.mark is not None and (one.mark.line, one.mark.column) == (6, 5)
    assert desired.accounts == {"cloudflare": (ACCOUNT,)}


def test_every_problem_reported_at_once_with_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        finetunes:
          - name: one
            provider: cloudflare
            modle: "@cf/mistral/mistral-7b-instruct-v0.2-lora"
            adapter: a
          - name: cf-public-two
            provider: cloudflare
            model: "@cf/google/gemma-2b-it-lora"
            public: "yes"
            adapter: a
          - name: three
            provider: cloudfare
            model: x
            adapter: a
        """,
    )
    found = problems(path)
    f = str(path)
    assert found == [
        f"{f}:3:5: error: finetunes[0]: missing required key 'model'",
        f"{f}:5:5: error: finetunes[0].modle: unknown key 'modle' (did you mean 'model'?); "
        "expected one of: "
        "account_id, adapter, checks, description, keep, model, name, provider, public, "
        "versioning",
        f"{f}:7:11: error: finetunes[1].name: 'cf-public-two' is not allowed: "
        "the prefix cf-public- is reserved by Cloudflare for its public adapters",
        f"{f}:10:13: error: finetunes[1].public: expected a boolean (true or false), got a string",
        f"{f}:13:15: error: finetunes[2].provider: 'cloudfare' is not one of: "
        "'cloudflare', 'cohere', 'vllm', 'fireworks'",
    ]


def test_duplicate_names_missing_files_and_unset_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        providers:
          cloudflare:
            account_id: ${NOT_SET_ANYWHERE}
        finetunes:
          - name: same
            provider: cloudflare
            model: "@cf/mistral/mistral-7b-instruct-v0.2-lora"
            adapter: a
          - name: same
            provider: cloudflare
            model: "@cf/mistral/mistral-7b-instruct-v0.2-lora"
            adapter: a
          - name: no-folder
            provider: cloudflare
            model: "@cf/mistral/mistral-7b-instruct-v0.2-lora"
            adapter: missing/
        """,
    )
    (tmp_path / "a" / "adapter_model.safetensors").unlink()
    found = problems(path, env={})
    f = str(path)
    # an unset account variable hides nothing: every problem at once
    assert found == [
        f"{f}:4:17: error: providers.cloudflare.account_id: environment variable NOT_SET_ANYWHERE "
        "is not set (referenced as ${NOT_SET_ANYWHERE}); "
        "set it or write ${NOT_SET_ANYWHERE:-default}",
        f"{f}:9:14: error: finetune 'same': a/adapter_model.safetensors: not found in the "
        "adapter folder; the provider requires this exact name",
        f"{f}:10:11: error: duplicate finetune name 'same' (first declared at line 6)",
        f"{f}:17:14: error: finetune 'no-folder': adapter folder missing/ does not exist",
    ]
    # once the variable is set, the same problems less that one
    found = problems(path, env={"NOT_SET_ANYWHERE": ACCOUNT})
    assert found == [
        f"{f}:9:14: error: finetune 'same': a/adapter_model.safetensors: not found in the "
        "adapter folder; the provider requires this exact name",
        f"{f}:10:11: error: duplicate finetune name 'same' (first declared at line 6)",
        f"{f}:17:14: error: finetune 'no-folder': adapter folder missing/ does not exist",
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "version: 1\nfinetunes: [\n",
            ":3:1: error: invalid YAML: expected the node content, but found '<stream end>'",
        ),
        ("", ":1:1: error: the file is empty: expected a mapping with 'version' and 'finetunes'"),
        ("version: 2\nfinetunes: []\n", ":1:10: error: version: expected 1, got 2"),
        ("- a list\n", ":1:1: error: (top level): expected a mapping, got a list"),
        (
            "version: 1\nversion: 1\nfinetunes: []\n",
            ":2:1: error: duplicate key 'version' (first at line 1); "
            "YAML would silently keep only the last",
        ),
        (
            "version: 1\nfinetunes: []\ntoken: abc\n",
            ":3:1: error: token: unknown key 'token'; "
            "expected one of: finetunes, outputs, providers, settings, version",
        ),
    ],
)
def test_single_problem_messages(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "finetunes.yaml"
    path.write_text(body)
    assert problems(path) == [str(path) + expected]


def test_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    lines.append("finetunes: *a9")
    path = tmp_path / "finetunes.yaml"
    path.write_text("\n".join(lines) + "\n")
    (message,) = problems(path)
    assert "expands to more than 200000 values" in message


def test_unreadable_or_missing_config(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: error: file not found (use -c to name the config)"
    ]
    assert problems(tmp_path) == [f"{tmp_path}: error: is a directory, expected a YAML file"]


def test_validate_command(cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    ok = cli("validate", "-c", project)
    assert ok.exit_code == 0
    assert ok.stdout == f"{project} is valid: 2 finetunes.\n"
    project.write_text(project.read_text().replace("adapter: adapters/faq-v1/", "adaptor: x"))
    bad = cli("validate", "-c", project)
    assert bad.exit_code == 1
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"{project}:21:5: error: finetunes[1]: missing required key 'adapter'",
        f"{project}:25:5: error: finetunes[1].adaptor: unknown key 'adaptor' "
        "(did you mean 'adapter'?); expected one of: "
        "account_id, adapter, checks, description, keep, model, name, provider, public, "
        "versioning",
        "2 problems found; nothing was changed.",
    ]
