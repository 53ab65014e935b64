"""A Fireworks item of the config (items.py) and the pure checks of its limits (checks.py): real
YAML with line marks, real adapter folders in a temporary directory."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.adapters.preflight import LimitsError
from reconciler.base.errors import Problem
from reconciler.base.model import DesiredFinetune, SourceMark
from reconciler.config.items import ItemContext
from reconciler.config.yamlsource import parse
from reconciler.providers.fireworks import checks
from reconciler.providers.fireworks.checks import published
from reconciler.providers.fireworks.items import FireworksItems

BASE = "accounts/fireworks/models/llama-v3p1-8b-instruct"
ENV = {"FIREWORKS_ACCOUNT_ID": "acme"}


def weights(rank: int = 8) -> bytes:
    header = {
        "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": {
            "dtype": "F32",
            "shape": [rank, 4],
            "data_offsets": [0, rank * 16],
        },
        "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": {
            "dtype": "F32",
            "shape": [4, rank],
            "data_offsets": [rank * 16, rank * 32],
        },
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * (rank * 32)


def write_adapter(folder: Path, **config: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"r": 8, "target_modules": ["q_proj", "v_proj"], **config}
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    rank = settings["r"] if isinstance(settings["r"], int) and settings["r"] > 0 else 8
    (folder / "adapter_model.safetensors").write_bytes(weights(rank))


def build(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
    versioning: str | None = None,
    **fields: Any,
) -> tuple[DesiredFinetune, list[Problem]]:
    item = {
        "name": "support-bot",
        "provider": "fireworks",
        "model": BASE,
        "adapter": "adapters/support",
        **fields,
    }
    data: dict[str, Any] = {"version": 1, "finetunes": [item]}
    if versioning:
        data["settings"] = {"versioning": versioning}
    source, problems = parse(yaml.safe_dump(data, sort_keys=False), "finetunes.yaml")
    assert source is not None and not problems
    context = ItemContext(
        source=source,
        where=("finetunes", 0),
        item=source.data["finetunes"][0],
        base=tmp_path,
        env=ENV if env is None else env,
        settings=settings or {},
        allow_external=False,
        mark=SourceMark("finetunes.yaml", 3, 5),
        problems=problems,
        cache=None,
        limits=None,
    )
    return FireworksItems().build(context), problems


def said(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def test_a_good_item_builds_its_record_and_nothing_is_wrong(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters/support")
    desired, problems = build(tmp_path, description="Answers tickets", serve="serverless")
    assert problems == []
    assert (desired.account, desired.model, desired.public) == ("acme", BASE, False)
    assert desired.fields == {
        "model": BASE,
        "description": "Answers tickets",
        "serve": "serverless",
    }
    assert [a.name for a in desired.assets] == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]


def test_serve_is_absent_false_serverless_or_a_deployment(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters/support")
    assert build(tmp_path)[0].fields["serve"] is None
    assert build(tmp_path, serve=False)[0].fields["serve"] is None
    deployment = "accounts/acme/deployments/multi-lora"
    assert build(tmp_path, serve=deployment)[0].fields["serve"] == deployment
    _, problems = build(tmp_path, serve="dedicated")
    assert "serve is false, serverless, or a deployment" in said(problems)
    _, problems = build(tmp_path, serve="accounts/other/deployments/multi-lora")
    assert "a deployment of account other; the adapter is loaded in its own account, acme" in (
        said(problems)
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"r": 2}, '"r" is 2; Fireworks takes a LoRA rank from 4 to 64 (peftDetails.r)'),
        ({"r": 128}, '"r" is 128; Fireworks takes a LoRA rank from 4 to 64'),
        ({"r": "8"}, '"r" is "8", not a whole number'),
        ({"r": True}, '"r" is true, not a whole number'),
        ({"rank_pattern": {"q_proj": 16}}, "Fireworks takes one rank for every module"),
        ({"target_modules": "all-linear"}, '"target_modules" is "all-linear", a pattern'),
        ({"target_modules": []}, "not a non-empty list of module names"),
        ({"target_modules": ["q_proj", "lm_head"]}, '"target_modules" holds "lm_head"; Fireworks'),
        (
            {"target_modules": ["model.layers.0.self_attn.q_proj"]},
            "(write it as q_proj); Fireworks takes target_modules among q_proj, k_proj",
        ),
    ],
)
def test_the_adapter_config_is_held_to_fireworks_limits(
    tmp_path: Path, config: dict[str, Any], expected: str
) -> None:
    write_adapter(tmp_path / "adapters/support", **config)
    _, problems = build(tmp_path)
    assert expected in said(problems)
    assert problems and all(p.line == 6 for p in problems)  # the adapter's line
    assert "adapters/support/adapter_config.json" in said(problems)


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "adapters/support"
    write_adapter(folder)
    (folder / "adapter_model.safetensors").unlink()
    (folder / "adapter_config.json").write_text('{"r": 8, "r": 9}')
    _, problems = build(tmp_path)
    text = said(problems)
    assert "adapter_model.safetensors: not found in the adapter folder" in text
    assert 'adapter_config.json: is not acceptable JSON (the key "r" appears twice)' in text
    (folder / "adapter_model.safetensors").write_bytes(b"\x05\0\0\0\0\0\0\0{}")
    _, problems = build(tmp_path)
    assert "adapter_model.safetensors: " in said(problems)


def test_tensors_of_another_rank_than_the_configs_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "adapters/support"
    write_adapter(folder)
    (folder / "adapter_model.safetensors").write_bytes(weights(16))
    _, problems = build(tmp_path)
    assert [str(p).split(": ", 3)[-1] for p in problems] == [
        "adapters/support/adapter_model.safetensors: 2 LoRA tensors (e.g. "
        '"base_model.model.layers.0.self_attn.q_proj.lora_A.weight") have rank 16, but '
        'adapter_config.json says "r": 8; Fireworks takes one rank for every module '
        "(peftDetails.r): save the adapter again"
    ]


@pytest.mark.parametrize(
    ("name", "versioning", "expected"),
    [
        ("Support_Bot", None, "rename it (e.g. support-bot)"),
        ("9lives", None, "starting with a letter"),
        ("bot-", None, "not ending with '-'"),
        ("a" * 64, None, "1 to 63 characters"),
        ("a" * 55, "content", "leaves 54 for the name"),
    ],
)
def test_a_name_that_cannot_be_a_model_id_is_refused_with_a_suggestion(
    tmp_path: Path, name: str, versioning: str | None, expected: str
) -> None:
    write_adapter(tmp_path / "adapters/support")
    _, problems = build(tmp_path, name=name, versioning=versioning)
    assert expected in said(problems)
    assert [p.line for p in problems] == [3]  # the name's line


def test_names_that_fit_pass_even_at_the_bounds(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters/support")
    # a later model's id is NAME-<8 hex> whatever the versioning, so 54 is the most
    assert build(tmp_path, name="a" * 54)[1] == []
    assert build(tmp_path, name="a" * 54, versioning="content")[1] == []
    assert "leaves 54 for the name" in said(build(tmp_path, name="a" * 55)[1])


def test_the_description_leaves_room_for_the_digest_line(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters/support")
    room = checks.limits().max_own_description
    assert room == 999 - 83
    assert build(tmp_path, description="d" * room)[1] == []
    _, problems = build(tmp_path, description="d" * (room + 1))
    assert f"at most 999 and reconciler adds a 83-character digest line, so at most {room}" in (
        said(problems)
    )
    _, problems = build(tmp_path, description="ok\nreconciler:mine")
    assert "kept for the digest line" in said(problems)


def test_the_model_is_a_resource_name(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters/support")
    _, problems = build(tmp_path, model="llama-v3p1-8b-instruct")
    assert "accounts/<account>/models/<id>" in said(problems)
    assert [p.line for p in problems] == [5]  # the model's line


def test_the_account_comes_from_the_environment_or_the_config(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters/support")
    _, problems = build(tmp_path, env={})
    assert "no fireworks account id" in said(problems)
    _, problems = build(tmp_path, env={"FIREWORKS_ACCOUNT_ID": "Acme Inc"})
    assert "FIREWORKS_ACCOUNT_ID is not a Fireworks account id" in said(problems)
    desired, problems = build(tmp_path, env={}, account_id="other-acct")
    assert (desired.account, problems) == ("other-acct", [])


def test_limits_may_be_overridden_by_the_config_and_only_those(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters/support", r=128)
    assert build(tmp_path, settings={"limits": {"max_lora_rank": 128}})[1] == []
    # the loader hands limits() the whole providers.fireworks block
    assert FireworksItems().limits({"limits": {"max_lora_rank": 128}}) is None
    with pytest.raises(LimitsError, match="unknown Fireworks limit max_asset_bytes"):
        FireworksItems().limits({"limits": {"max_asset_bytes": 5}})
    # the loader reports a bad override (it asks limits() first); build goes on without it
    _, problems = build(tmp_path, settings={"limits": {"max_asset_bytes": 5}})
    assert '"r" is 128; Fireworks takes a LoRA rank from 4 to 64' in said(problems)
    with pytest.raises(LimitsError, match=r"min_lora_rank \(64\) is above max_lora_rank \(8\)"):
        checks.limits({"min_lora_rank": 64, "max_lora_rank": 8})
    with pytest.raises(LimitsError, match="target_modules must be a non-empty list"):
        checks.limits({"target_modules": []})


def test_peft_details_come_from_the_adapter_config() -> None:
    limit = checks.limits()
    raw = json.dumps({"r": 16, "target_modules": ["v_proj", "q_proj", "v_proj"]}).encode()
    assert checks.peft_details(raw, limit) == (16, ("v_proj", "q_proj"))
    with pytest.raises(ValueError, match='"r" is 65'):
        checks.peft_details(b'{"r": 65, "target_modules": ["q_proj"]}', limit)
    assert checks.check_config(b"\xff", limit) == ["is not UTF-8 text (invalid byte at offset 0)"]
    assert checks.check_config(b"[]", limit) == ["must be a JSON object, not list"]


def test_the_published_limits_are_the_documented_ones() -> None:
    data = published()
    assert data["required_files"] == ["adapter_config.json", "adapter_model.safetensors"]
    limit = checks.limits()
    assert (limit.min_rank, limit.max_rank, limit.max_model_id) == (4, 64, 63)
    assert set(limit.target_modules) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "up_proj",
        "down_proj",
        "gate_proj",
        "w1",
        "w2",
        "w3",
        "block_sparse_moe.gate",
    }


@pytest.mark.parametrize(
    ("versioning", "expected"),
    [(None, "first-by-name"), ("none", "first-by-name"), ("content", "content")],
)
def test_a_first_model_bears_the_name_unless_versioning_is_content(
    tmp_path: Path, versioning: str | None, expected: str
) -> None:
    write_adapter(tmp_path / "adapters/support")
    desired, problems = build(tmp_path, versioning=versioning)
    assert problems == []
    assert (desired.versioning, desired.keep) == (expected, 1)
