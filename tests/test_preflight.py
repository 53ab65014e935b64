"""Adapter pre-flight checks, each against a real broken file written to tmp_path."""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.adapters.preflight import (
    Limits,
    LimitsError,
    check_account_capacity,
    check_adapter,
    ignored_files,
    model_notes,
)
from reconciler.adapters.safetensors import (
    DTYPE_BITS,
    MAX_HEADER_BYTES,
    Header,
    SafetensorsError,
    parse_header,
    read_header,
)
from reconciler.base.model import DesiredFinetune
from reconciler.providers.registry import limits as published_data
from reconciler.providers.registry import load_config
from reconciler.sources.local import LocalSource
from reconciler.state.statcache import StatCache

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"
MISTRAL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
GEMMA = "@cf/google/gemma-2b-it-lora"
CFG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
LIMITS = Limits.from_data(published_data("cloudflare"))


def check_finetune(
    finetune: DesiredFinetune, folder: Path, limits: Limits, cache: StatCache | None = None
) -> list[str]:
    """The checks config runs on a local adapter folder."""
    return check_adapter(finetune, LocalSource(folder, cache), limits)


# --- builders: valid adapters, the way PEFT writes them, so each test breaks one thing ---


def st_bytes(header: dict[str, Any], data: bytes, length: int | None = None) -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # writers pad the header to 8 bytes with spaces
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def lora_tensors(
    rank: int = 4, hidden: int = 8, dtype: str = "F32"
) -> tuple[dict[str, Any], bytes]:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    data = bytearray()
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    for name, shape in (("lora_A.weight", [rank, hidden]), ("lora_B.weight", [hidden, rank])):
        size = math.prod(shape) * DTYPE_BITS[dtype] // 8
        header[f"{prefix}.{name}"] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(data), len(data) + size],
        }
        data += bytes(i % 251 for i in range(size))
    return header, bytes(data)


def adapter_config(model_type: str = "mistral", rank: int = 4) -> dict[str, Any]:
    return {
        "model_type": model_type,
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": ["q_proj"],
    }


def write_adapter(
    folder: Path,
    config_doc: object | None = None,
    weights: bytes | None = None,
    config_text: str | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if config_text is None:
        config_text = json.dumps(adapter_config() if config_doc is None else config_doc, indent=2)
    (folder / CFG).write_text(config_text)
    if weights is None:  # tensors of the rank the config declares, as PEFT saves them
        rank = config_doc.get("r") if isinstance(config_doc, dict) else None
        ok = isinstance(rank, int) and not isinstance(rank, bool) and 1 <= rank <= 256
        weights = st_bytes(*lora_tensors(rank=rank if ok else 4))  # type: ignore[arg-type]
    (folder / WEIGHTS).write_bytes(weights)
    return folder


def desired(model: str = MISTRAL) -> DesiredFinetune:
    return DesiredFinetune(
        name="support-bot",
        provider="cloudflare",
        account="0" * 32,
        model=model,
        description=None,
        public=False,
        assets=(),
    )


def check(folder: Path, model: str = MISTRAL, limits: Limits = LIMITS) -> list[str]:
    return check_finetune(desired(model), folder, limits)


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def weights_problem(tmp_path: Path, weights: bytes) -> str:
    return only(check(write_adapter(tmp_path / "a", weights=weights)))


# --- the good cases: without them every failure test below could pass by accident ---


def test_the_quickstart_adapters_pass_with_the_published_limits() -> None:
    desired_all = load_config(QUICKSTART / "finetunes.yaml", {"CLOUDFLARE_ACCOUNT_ID": "a" * 32})
    assert len(desired_all.finetunes) == 2
    for finetune in desired_all.finetunes:
        folder = finetune.assets[0].path.parent
        assert check_finetune(finetune, folder, LIMITS) == [], finetune.name


def test_a_valid_adapter_passes_and_the_reader_sees_its_tensors(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    assert check(folder) == []
    header = read_header(folder / WEIGHTS)
    assert [t.shape for t in header.tensors] == [(4, 8), (8, 4)]
    assert header.data_bytes == 2 * 4 * 8 * 4
    assert header.metadata == {"format": "pt"}


def test_the_example_writer_makes_adapters_that_pass(tmp_path: Path) -> None:
    import runpy

    make = runpy.run_path(str(ROOT / "examples" / "make_adapter.py"))["make_adapter"]
    make(tmp_path / "g", "gemma", 8, 16, 2, "seed")
    assert check(tmp_path / "g", GEMMA) == []


# --- 1. file names ---


@pytest.mark.parametrize(
    ("wrong", "right", "advice"),
    [
        ("adapter_model.bin", WEIGHTS, "convert the weights to safetensors"),
        ("adapter_model.safetensor", WEIGHTS, f"rename it to exactly {WEIGHTS}"),
        ("Adapter_Model.safetensors", WEIGHTS, f"rename it to exactly {WEIGHTS}"),
        ("adapter_config.JSON", CFG, f"rename it to exactly {CFG}"),
        ("adaptor_config.json", CFG, f"rename it to exactly {CFG}"),
    ],
)
def test_a_near_miss_file_name_is_named_with_the_expected_one(
    tmp_path: Path, wrong: str, right: str, advice: str
) -> None:
    folder = write_adapter(tmp_path / "a")
    (folder / right).rename(folder / wrong)
    assert {p.name for p in folder.iterdir()} == {wrong, CFG, WEIGHTS} - {right}
    message = only(check(folder))
    assert message.startswith(f"{right}: not found, but the folder has {wrong}; ")
    assert advice in message


def test_a_missing_file_with_no_near_miss_says_the_exact_name(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    (folder / CFG).unlink()
    assert only(check(folder)) == (
        f"{CFG}: not found in the adapter folder; the provider requires this exact name"
    )


def test_extra_files_are_no_error_but_are_listed_as_not_uploaded(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    (folder / "README.md").write_text("notes")
    (folder / "adapter_model.bin").write_bytes(b"old")
    assert check(folder) == []
    assert ignored_files(folder, LIMITS) == ["README.md", "adapter_model.bin"]


def test_a_folder_where_a_file_should_be(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    (folder / CFG).unlink()
    (folder / CFG).mkdir()
    assert only(check(folder)).startswith(f"{CFG}: is not a regular file")


# --- 2. sizes ---


@pytest.mark.parametrize("name", [CFG, WEIGHTS])
def test_an_empty_file(tmp_path: Path, name: str) -> None:
    folder = write_adapter(tmp_path / "a")
    (folder / name).write_bytes(b"")
    assert only(check(folder)) == f"{name}: is empty (0 bytes); expected the adapter's {name}"


def test_a_file_over_the_size_limit(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    size = (folder / WEIGHTS).stat().st_size
    small = Limits.from_data(published_data("cloudflare"), {"max_asset_bytes": size - 1})
    message = only(check(folder, limits=small))
    assert message.startswith(
        f"{WEIGHTS}: is {size:,} bytes, over the provider's limit of {size - 1:,} bytes per file"
    )
    assert check(folder, limits=Limits.from_data(published_data("cloudflare"))) == []


# --- 3. adapter_config.json ---


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    text = '{\n  "model_type": "mistral",\n  "r": 4\n  "lora_alpha": 8\n}\n'
    folder = write_adapter(tmp_path / "a", config_text=text)
    assert only(check(folder)) == (
        f"{CFG}: is not valid JSON: Expecting ',' delimiter at line 4, column 3"
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"model_type": "mistral", "r": 4, "r": 64}', 'the key "r" appears twice'),
        ('{"model_type": "mistral", "r": 4, "lora_alpha": NaN}', "NaN is not a JSON number"),
        ('{"model_type": "mistral", "r": 4, "lora_dropout": -Infinity}', "-Infinity is not a"),
    ],
)
def test_a_config_that_json_accepts_but_is_ambiguous(tmp_path: Path, text: str, why: str) -> None:
    # Python keeps the last duplicate, another parser the first: the rank would be unknowable
    folder = write_adapter(tmp_path / "a", config_text=text, weights=st_bytes(*lora_tensors(4)))
    assert only(check(folder)).startswith(f"{CFG}: is not acceptable JSON ({why}")


def test_a_config_that_is_not_an_object(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", config_doc=["mistral", 4])
    assert only(check(folder)) == f"{CFG}: must be a JSON object, not list"


def test_a_config_that_is_not_utf8(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    (folder / CFG).write_bytes(b'{"model_type": "mistral\xff", "r": 4}')
    assert only(check(folder)) == f"{CFG}: is not UTF-8 text (invalid byte at offset 23)"


def test_a_config_far_too_big_to_be_one_is_not_parsed(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", config_text="{" + " " * 1_000_000 + "}")
    assert only(check(folder)) == (
        f"{CFG}: is 1,000,002 bytes; an adapter config is a few kB: is it the right file?"
    )


def test_missing_model_type_suggests_the_base_models_family(tmp_path: Path) -> None:
    doc = adapter_config()
    del doc["model_type"]
    folder = write_adapter(tmp_path / "a", config_doc=doc)
    assert only(check(folder)) == (
        f'{CFG}: has no "model_type", which the provider requires; add "model_type": "mistral"'
    )


def test_an_unsupported_model_type(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", config_doc=adapter_config(model_type="qwen2"))
    assert only(check(folder)) == (
        f'{CFG}: "model_type" is "qwen2"; the provider accepts mistral, gemma, llama'
    )


def test_a_gemma_adapter_on_a_mistral_base(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", config_doc=adapter_config(model_type="gemma"))
    message = only(check(folder, MISTRAL))
    assert message.startswith(
        f'{CFG}: "model_type" is "gemma" but the base model {MISTRAL} takes "mistral" adapters'
    )
    assert GEMMA in message
    assert check(folder, GEMMA) == []


def test_a_rank_over_the_limit(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", config_doc=adapter_config(rank=64))
    problems = check(folder)
    assert problems[0].startswith(
        f'{CFG}: "r" is 64, over the provider\'s rank limit of 32; retrain with r <= 32'
    )
    assert problems[1].startswith(
        f"{WEIGHTS}: 2 LoRA tensors (e.g. "
        '"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") have rank 64, over '
        "the provider's rank limit of 32"
    )


@pytest.mark.parametrize("rank", [8, 16, 32])
def test_ranks_up_to_32_are_accepted(tmp_path: Path, rank: int) -> None:
    folder = write_adapter(tmp_path / "a", config_doc=adapter_config(rank=rank))
    assert check(folder) == []


def test_the_rank_limit_is_data_the_config_can_raise(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", config_doc=adapter_config(rank=64))
    assert len(check(folder)) == 2
    raised = Limits.from_data(published_data("cloudflare"), {"max_lora_rank": 64})
    assert check(folder, limits=raised) == []


def test_a_config_rank_that_is_not_the_tensors_rank(tmp_path: Path) -> None:
    folder = write_adapter(
        tmp_path / "a", config_doc=adapter_config(rank=4), weights=st_bytes(*lora_tensors(8))
    )
    assert only(check(folder)) == (
        f"{WEIGHTS}: 2 LoRA tensors (e.g. "
        '"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") have rank 8, but '
        f'{CFG} says "r": 4: the config must describe these weights (save both with the same '
        "PEFT save_pretrained call)"
    )


def test_a_rank_pattern_allows_other_ranks(tmp_path: Path) -> None:
    doc = {**adapter_config(rank=4), "rank_pattern": {"q_proj": 8}}
    folder = write_adapter(tmp_path / "a", config_doc=doc, weights=st_bytes(*lora_tensors(8)))
    assert check(folder) == []


def test_a_file_too_large_names_the_tensors_that_make_it_so(tmp_path: Path) -> None:
    header, data = lora_tensors(rank=4)
    size = 64 * 8 * 4
    header["base_model.model.lm_head.weight"] = {
        "dtype": "F32",
        "shape": [64, 8],
        "data_offsets": [len(data), len(data) + size],
    }
    folder = write_adapter(tmp_path / "a", weights=st_bytes(header, data + bytes(size)))
    small = Limits.from_data(published_data("cloudflare"), {"max_asset_bytes": 2000})
    message = only(check(folder, limits=small))
    assert message.startswith(f"{WEIGHTS}: is ")
    assert (
        'its largest tensors are not LoRA weights: "base_model.model.lm_head.weight" '
        "(2,048 bytes); these are full layers saved with the adapter (PEFT's modules_to_save"
    ) in message


def test_a_missing_rank(tmp_path: Path) -> None:
    doc = adapter_config()
    del doc["r"]
    folder = write_adapter(tmp_path / "a", config_doc=doc)
    assert only(check(folder)) == (
        f'{CFG}: has no "r" (the LoRA rank), which the provider requires; '
        "expected a whole number from 1 to 32"
    )


@pytest.mark.parametrize("rank", [0, -1, 4.5, "4", True, None])
def test_a_rank_that_is_not_a_positive_whole_number(tmp_path: Path, rank: object) -> None:
    doc = {**adapter_config(), "r": rank}
    folder = write_adapter(tmp_path / "a", config_doc=doc)
    assert only(check(folder)) == (
        f'{CFG}: "r" is {json.dumps(rank)}; expected a whole number from 1 to 32'
    )


# --- 4. adapter_model.safetensors ---


def test_a_file_shorter_than_the_header_size_field(tmp_path: Path) -> None:
    assert weights_problem(tmp_path, b"\x10\x00\x00\x00\x00") == (
        f"{WEIGHTS}: is 5 bytes long; a safetensors file starts with an 8-byte header size"
    )


def test_a_corrupt_header_length_past_the_end_of_the_file(tmp_path: Path) -> None:
    header, data = lora_tensors()
    good = st_bytes(header, data)
    broken = st_bytes(header, data, length=len(good))
    assert weights_problem(tmp_path, broken) == (
        f"{WEIGHTS}: declares a {len(good)}-byte header but the whole file is {len(good)} "
        "bytes: the file is truncated or not a safetensors file"
    )


def test_a_header_length_over_the_bound_is_refused(tmp_path: Path) -> None:
    header, data = lora_tensors()
    broken = st_bytes(header, data, length=2**63)
    assert weights_problem(tmp_path, broken).startswith(
        f"{WEIGHTS}: declares a {2**63:,}-byte header, over reconciler's limit of 8,388,608 "
        "bytes for an adapter's header"
    )


def test_a_header_of_100_mb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # a real 100 MB header once took 36 s and 1.3 GB to parse: it is refused at its length
    header, data = lora_tensors()
    header["x" * 100_000_000] = header.pop(next(k for k in header if k.endswith("A.weight")))
    raw = json.dumps(header).encode()
    path = tmp_path / WEIGHTS
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    with pytest.raises(SafetensorsError, match="over reconciler's limit of 8,388,608 bytes"):
        read_header(path)


def test_a_header_that_is_not_utf8(tmp_path: Path) -> None:
    raw = b'{"a\xff":{}}     '
    assert weights_problem(tmp_path, struct.pack("<Q", len(raw)) + raw) == (
        f"{WEIGHTS}: header is not UTF-8 text (invalid byte at header offset 3)"
    )


def test_a_header_that_is_not_json_names_line_and_column(tmp_path: Path) -> None:
    raw = b'{"t": {"dtype": "F32",\n "shape": [1] "data_offsets": [0, 4]}}'
    problem = weights_problem(tmp_path, struct.pack("<Q", len(raw)) + raw + bytes(4))
    assert problem == (
        f"{WEIGHTS}: header is not valid JSON (line 2, column 15: Expecting ',' delimiter)"
    )


@pytest.mark.parametrize("raw", [b"[1, 2]  ", b'  {"a": 1}'])
def test_a_header_that_is_not_a_json_object(tmp_path: Path, raw: bytes) -> None:
    assert weights_problem(tmp_path, struct.pack("<Q", len(raw)) + raw) == (
        f"{WEIGHTS}: header does not start with '{{': expected a JSON object"
    )


def test_no_tensors_at_all(tmp_path: Path) -> None:
    problem = weights_problem(tmp_path, st_bytes({"__metadata__": {"format": "pt"}}, b""))
    assert problem == (
        f"{WEIGHTS}: holds no tensors: an adapter without weights cannot be uploaded"
    )


@pytest.mark.parametrize("dtype", ["F31", "float32", "f32", 4, None])
def test_an_unknown_dtype(tmp_path: Path, dtype: object) -> None:
    header, data = lora_tensors()
    name = next(k for k in header if k.endswith("lora_A.weight"))
    header[name]["dtype"] = dtype
    problem = weights_problem(tmp_path, st_bytes(header, data))
    assert problem.startswith(
        f'{WEIGHTS}: tensor "{name}" has dtype {json.dumps(dtype)}, '
        "which is not a safetensors dtype (expected one of BOOL, U8, I8, "
    )


def test_a_dtype_whose_size_does_not_match_the_bytes(tmp_path: Path) -> None:
    header, data = lora_tensors(dtype="F32")
    name = next(k for k in header if k.endswith("lora_B.weight"))
    header[name]["dtype"] = "F16"  # the bytes are still sized for F32
    assert weights_problem(tmp_path, st_bytes(header, data)) == (
        f'{WEIGHTS}: tensor "{name}" spans 128 bytes (data_offsets [128, 256]) but '
        "shape [8, 4] of F16 needs 64 bytes"
    )


def test_a_sub_byte_dtype_needs_whole_bytes(tmp_path: Path) -> None:
    header = {"t": {"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}}
    assert weights_problem(tmp_path, st_bytes(header, bytes(1))) == (
        f'{WEIGHTS}: tensor "t" of F4 holds 12 bits, not a whole number of bytes'
    )
    header = {"t": {"dtype": "F4", "shape": [2, 3], "data_offsets": [0, 3]}}
    assert check(write_adapter(tmp_path / "b", weights=st_bytes(header, bytes(3)))) == []


@pytest.mark.parametrize("shape", [[4, -8], [4, True], [4, 8.0], "4x8", None])
def test_a_bad_shape(tmp_path: Path, shape: object) -> None:
    header, data = lora_tensors()
    name = next(k for k in header if k.endswith("lora_A.weight"))
    header[name]["shape"] = shape
    assert weights_problem(tmp_path, st_bytes(header, data)) == (
        f'{WEIGHTS}: tensor "{name}" has shape {json.dumps(shape)}: '
        "expected a list of integers >= 0"
    )


@pytest.mark.parametrize("offsets", [[128, 0], [0], [0, 128, 256], [-1, 127], "0-128"])
def test_bad_data_offsets(tmp_path: Path, offsets: object) -> None:
    header, data = lora_tensors()
    name = next(k for k in header if k.endswith("lora_A.weight"))
    header[name]["data_offsets"] = offsets
    assert weights_problem(tmp_path, st_bytes(header, data)) == (
        f'{WEIGHTS}: tensor "{name}" has data_offsets {json.dumps(offsets)}: '
        "expected [begin, end] with 0 <= begin <= end"
    )


def test_a_tensor_entry_missing_keys(tmp_path: Path) -> None:
    header = {"t": {"dtype": "F32"}}
    assert weights_problem(tmp_path, st_bytes(header, b"")) == (
        f'{WEIGHTS}: tensor "t" has no shape, data_offsets'
    )


def test_overlapping_offsets(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    assert weights_problem(tmp_path, st_bytes(header, bytes(24))) == (
        f'{WEIGHTS}: tensors "a" (bytes 0..16) and "b" (bytes 8..24) overlap in the data buffer'
    )


def test_a_gap_in_the_data_buffer(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [20, 36]},
    }
    assert weights_problem(tmp_path, st_bytes(header, bytes(36))) == (
        f"{WEIGHTS}: bytes 16..20 of the data buffer belong to no tensor "
        "(the format allows no gaps)"
    )


def test_trailing_bytes_after_the_last_tensor(tmp_path: Path) -> None:
    header, data = lora_tensors()
    assert weights_problem(tmp_path, st_bytes(header, data + bytes(5))) == (
        f"{WEIGHTS}: has 5 bytes after the last tensor's data that belong to no tensor "
        "(the format allows no trailing bytes)"
    )


def test_a_truncated_file_says_how_many_bytes_are_missing(tmp_path: Path) -> None:
    header, data = lora_tensors()
    assert weights_problem(tmp_path, st_bytes(header, data)[:-100]) == (
        f"{WEIGHTS}: is truncated: the header describes 256 bytes of tensor data but only "
        "156 follow it (100 bytes missing)"
    )


def test_metadata_must_map_strings_to_strings(tmp_path: Path) -> None:
    header, data = lora_tensors()
    header["__metadata__"] = {"format": "pt", "epochs": 3}
    assert weights_problem(tmp_path, st_bytes(header, data)) == (
        f"{WEIGHTS}: __metadata__ must be an object mapping strings to strings"
    )


def test_a_tensor_named_twice(tmp_path: Path) -> None:
    entry = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    raw = ('{"t":' + entry + ',"t":' + entry + "}").encode()
    problem = weights_problem(tmp_path, struct.pack("<Q", len(raw)) + raw + bytes(4))
    assert problem == f'{WEIGHTS}: header is not acceptable JSON (the key "t" appears twice)'


def test_many_broken_tensors_are_summarised(tmp_path: Path) -> None:
    header = {f"t{i}": {"dtype": "X"} for i in range(25)}
    folder = write_adapter(tmp_path / "a", weights=st_bytes(header, b""))
    problems = check(folder)
    assert len(problems) == 11
    assert problems[-1] == f"{WEIGHTS}: ... and 15 more like these"


# --- 5. the base model ---


def test_the_base_model_is_not_checked_offline(tmp_path: Path) -> None:
    # only the account's live catalogue can say; validate warns instead (model_notes)
    folder = write_adapter(tmp_path / "a")
    assert check(folder, "@cf/meta/llama-3-8b-instruct") == []


def test_a_base_model_unknown_to_the_snapshot_is_a_warning() -> None:
    (note,) = model_notes(desired("@cf/meta/llama-3-8b-instruct"), LIMITS)
    assert note == (
        "model @cf/meta/llama-3-8b-instruct is not among the LoRA-capable models of the bundled "
        f"snapshot ({LIMITS.snapshot_date}); plan checks it against the account's live model "
        "catalogue"
    )
    assert model_notes(desired(MISTRAL), LIMITS) == []


def test_the_non_lora_twin_of_a_lora_model_gets_a_hint() -> None:
    (note,) = model_notes(desired("@cf/mistral/mistral-7b-instruct-v0.2"), LIMITS)
    assert f"(did you mean {MISTRAL}?)" in note


def test_a_quantized_base_model() -> None:
    (note,) = model_notes(desired("@hf/thebloke/mistral-7b-instruct-v0.1-awq"), LIMITS)
    assert "(it looks quantized: LoRA adapters need a full-precision base model)" in note


def test_fp8_fast_is_not_called_quantized() -> None:
    (note,) = model_notes(desired("@cf/meta/llama-3.3-70b-instruct-fp8-fast"), LIMITS)
    assert "quantized" not in note


@pytest.mark.parametrize(
    "model",
    [
        "@cf/meta/llama-3.2-11b-vision-instruct",
        "@cf/mistralai/mistral-small-3.1-24b-instruct",
        "@cf/qwen/qwen2.5-coder-32b-instruct",
        "@cf/google/gemma-3-12b-it",
        "@cf/qwen/qwq-32b",
        "@hf/google/gemma-7b-it",
    ],
)
def test_the_snapshot_knows_todays_lora_models(model: str) -> None:
    assert model in LIMITS.lora_models
    assert model_notes(desired(model), LIMITS) == []


def test_a_base_without_a_documented_family_takes_any_documented_model_type(
    tmp_path: Path,
) -> None:
    qwen = "@cf/qwen/qwen2.5-coder-32b-instruct"
    assert LIMITS.lora_models[qwen] is None
    for family in ("llama", "mistral", "gemma"):
        folder = write_adapter(tmp_path / family, config_doc=adapter_config(model_type=family))
        assert check(folder, qwen) == []
    folder = write_adapter(tmp_path / "qwen2", config_doc=adapter_config(model_type="qwen2"))
    assert '"model_type" is "qwen2"; the provider accepts mistral, gemma, llama' in only(
        check(folder, qwen)
    )


def test_the_config_can_add_a_lora_model(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", config_doc=adapter_config(model_type="llama"))
    newer = "@cf/meta/llama-3.1-8b-instruct-lora"
    assert len(model_notes(desired(newer), LIMITS)) == 1
    extended = Limits.from_data(published_data("cloudflare"), {"lora_models": {newer: "llama"}})
    assert model_notes(desired(newer), extended) == []
    assert check(folder, newer, extended) == []
    assert newer in extended.declared_models
    assert MISTRAL in extended.lora_models  # merged over the published list, not replacing it
    assert MISTRAL not in extended.declared_models


# --- 6. account capacity ---


def test_account_capacity() -> None:
    account = "0123456789abcdef0123456789abcdef"
    assert check_account_capacity(account, 97, 3, LIMITS) is None
    assert check_account_capacity(account, 120, 0, LIMITS) is None  # nothing new: no harm
    assert check_account_capacity(account, 98, 3, LIMITS) == (
        f"account {account} holds 98 finetunes and the plan creates 3: 101 would exceed the "
        "limit of 100 per account by 1; declare fewer new finetunes or use another account "
        "(raise max_finetunes_per_account in the config only if your account's limit is "
        "higher)"
    )
    raised = Limits.from_data(published_data("cloudflare"), {"max_finetunes_per_account": 200})
    assert check_account_capacity(account, 98, 3, raised) is None


# --- the limits as data ---


def test_the_published_limits_are_the_data_file() -> None:
    data = json.loads((ROOT / "reconciler/providers/cloudflare/limits.json").read_text())
    assert data["max_asset_bytes"] == LIMITS.max_asset_bytes
    assert data["max_lora_rank"] == LIMITS.max_lora_rank
    assert data["max_finetunes_per_account"] == LIMITS.max_finetunes_per_account
    assert dict(LIMITS.lora_models) == data["lora_models"]
    assert LIMITS.required_files == (CFG, WEIGHTS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_lora_ranks": 16}, "unknown limit max_lora_ranks"),
        ({"max_lora_rank": "eight"}, "max_lora_rank must be a whole number of at least 1"),
        ({"max_asset_bytes": 0}, "max_asset_bytes must be a whole number of at least 1"),
        ({"max_asset_bytes": True}, "max_asset_bytes must be a whole number of at least 1"),
        ({"supported_model_types": "llama"}, "supported_model_types must be a non-empty list"),
        ({"lora_models": ["@cf/x"]}, "lora_models must map model names to a model_type"),
        ({"lora_models": {"@cf/x": 3}}, "lora_models must map model names to a model_type"),
        ({"lora_models": {"@cf/x/phi-lora": "phi"}}, "lora_models: @cf/x/phi-lora map to"),
    ],
)
def test_bad_overrides_are_refused_by_name(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(LimitsError) as caught:
        Limits.from_data(published_data("cloudflare"), overrides)
    assert str(caught.value).startswith(message)


# --- the reader under hostile input ---


class ReadSpy(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requests: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.requests.append(-1 if size is None else size)
        return super().read(size)


@pytest.mark.parametrize("length", [2**63, 2**64 - 1, MAX_HEADER_BYTES + 1, 11])
def test_a_header_length_past_the_file_is_refused_without_reading(length: int) -> None:
    spy = ReadSpy(struct.pack("<Q", length) + b"{}")
    with pytest.raises(SafetensorsError, match="declares a"):
        parse_header(spy, file_size=10)
    assert spy.requests == [8]


@pytest.mark.parametrize("length", [2**63, 2**64 - 1, MAX_HEADER_BYTES + 1])
def test_a_header_length_over_the_bound_is_refused_even_in_a_huge_file(length: int) -> None:
    spy = ReadSpy(struct.pack("<Q", length) + b"{}")
    with pytest.raises(SafetensorsError, match="over reconciler's limit of 8,388,608 bytes"):
        parse_header(spy, file_size=2**66)
    assert spy.requests == [8]


def test_a_real_file_with_a_huge_header_length(tmp_path: Path) -> None:
    path = tmp_path / WEIGHTS
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    with pytest.raises(SafetensorsError, match="declares a 9,223,372,036,854,775,808-byte header"):
        read_header(path)


def test_absurd_nesting_is_a_clean_error() -> None:
    raw = b'{"t":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(SafetensorsError, match="header is not acceptable JSON"):
        parse_header(io.BytesIO(struct.pack("<Q", len(raw)) + raw), 8 + len(raw))


def test_huge_dimensions_are_a_clean_error() -> None:
    header = {"t": {"dtype": "F64", "shape": [2**62] * 10_000, "data_offsets": [0, 8]}}
    blob = st_bytes(header, bytes(8))
    with pytest.raises(SafetensorsError, match="too large for any file"):
        parse_header(io.BytesIO(blob), len(blob))


def parse_or_error(blob: bytes, file_size: int | None = None) -> Header | None:
    size = len(blob) if file_size is None else file_size
    try:
        header = parse_header(io.BytesIO(blob), size)
    except SafetensorsError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return None
    # whatever the reader accepts must tile the data buffer exactly
    cursor = 0
    for t in header.tensors:
        assert t.begin == cursor
        cursor = t.end
    assert cursor == header.data_bytes == size - 8 - header.header_bytes
    assert header.tensors
    return header


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_give_a_clean_error(blob: bytes) -> None:
    parse_or_error(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=8, max_size=100), st.integers(0, 2**64 - 1))
def test_random_lengths_only_ever_give_a_clean_error(blob: bytes, length: int) -> None:
    parse_or_error(struct.pack("<Q", length) + blob[8:])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
tensor_entries = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from([*DTYPE_BITS, "F31", "", "f32"]) | json_values,
        "shape": st.lists(st.integers(-2, 2**66), max_size=4) | json_values,
        "data_offsets": st.lists(st.integers(-4, 2**65), min_size=0, max_size=3) | json_values,
    },
)
headers = st.dictionaries(
    st.text(max_size=12) | st.just("__metadata__"),
    tensor_entries | json_values,
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(headers, st.binary(max_size=64), st.none() | st.integers(0, 2**64 - 1))
def test_random_headers_only_ever_give_a_clean_error(
    header: dict[str, Any], data: bytes, length: int | None
) -> None:
    parse_or_error(st_bytes(header, data, length))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(DTYPE_BITS)), st.lists(st.integers(0, 5), max_size=3)),
        min_size=1,
        max_size=6,
    )
)
def test_any_valid_file_is_read_back_exactly(specs: list[tuple[str, list[int]]]) -> None:
    header: dict[str, Any] = {}
    offset = 0
    for i, (dtype, shape) in enumerate(specs):
        bits = math.prod(shape) * DTYPE_BITS[dtype]
        if bits % 8:
            shape = [*shape, 8]  # sub-byte dtypes pack into whole bytes
            bits *= 8
        header[f"t{i}"] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + bits // 8],
        }
        offset += bits // 8
    read = parse_or_error(st_bytes(header, bytes(offset)))
    assert read is not None
    assert {t.name: (t.dtype, list(t.shape), [t.begin, t.end]) for t in read.tensors} == {
        name: (e["dtype"], e["shape"], e["data_offsets"]) for name, e in header.items()
    }


def test_a_one_dimensional_lora_tensor_has_no_rank_to_check(tmp_path: Path) -> None:
    # only [r, in] (or [r, in, k, k]) shapes say a rank; a flat tensor is not misread as one
    header = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {
            "dtype": "F32",
            "shape": [16],
            "data_offsets": [0, 64],
        }
    }
    folder = write_adapter(tmp_path / "a", weights=st_bytes(header, bytes(64)))
    assert check(folder) == []
