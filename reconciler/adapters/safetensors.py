"""A strict reader of a .safetensors file's header: it never reads tensor data.

Layout: 8 bytes (u64, little-endian) giving the header size N, N bytes of UTF-8 JSON mapping
tensor names to {dtype, shape, data_offsets: [begin, end]} (plus an optional "__metadata__"
map of strings), then the data buffer. Offsets are relative to the start of the data buffer,
and the tensors must tile it exactly: no overlaps, no gaps, nothing past the end.

Everything the header claims is checked against the file's size before anything is read, so
a hostile length (say 2**63) costs an 8-byte read, not an allocation. Every failure is a
SafetensorsError carrying one message per problem found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

# The reference implementation (huggingface/safetensors) refuses headers over 100 MB, but
# parsing one that large costs tens of seconds and over a GB of memory. A LoRA adapter's
# header is tens of kB (1,000 tensors take about 150 kB): 8 MiB (some 50,000 tensors) is far
# past any real adapter, and parses in well under a second.
MAX_HEADER_BYTES = 8 * 1024 * 1024

# Bits per element, for every dtype the reference implementation defines. Sub-byte types
# (F4, F6_*) are packed, so a tensor's byte size is bits * elements / 8.
DTYPE_BITS: Mapping[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

METADATA_KEY = "__metadata__"
MAX_LISTED = 10  # per-tensor problems shown before "... and N more": a summary, not a dump


class SafetensorsError(ValueError):
    """The file is not a valid safetensors file; `problems` holds one message per finding."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offsets into the data buffer, as in the header
    end: int


@dataclass(frozen=True)
class Header:
    header_bytes: int  # N, the JSON header's size
    data_bytes: int  # the data buffer's size: the file's size minus 8 + N
    tensors: tuple[Tensor, ...]  # sorted by offset
    metadata: Mapping[str, str]


def read_header(path: Path, max_header_bytes: int = MAX_HEADER_BYTES) -> Header:
    """Read and check the header of the file at `path`. Raises SafetensorsError."""
    try:
        with path.open("rb") as f:
            return parse_header(f, os.fstat(f.fileno()).st_size, max_header_bytes)
    except OSError as exc:
        raise SafetensorsError([f"cannot be read ({exc.strerror or exc})"]) from exc


def parse_header(f: BinaryIO, file_size: int, max_header_bytes: int = MAX_HEADER_BYTES) -> Header:
    """Check the header of an open file of `file_size` bytes; reads at most 8 + N bytes."""
    if file_size < 8:
        raise SafetensorsError(
            [f"is {file_size} bytes long; a safetensors file starts with an 8-byte header size"]
        )
    prefix = f.read(8)
    if len(prefix) != 8:
        raise SafetensorsError(["ended before its 8-byte header size could be read"])
    size = int.from_bytes(prefix, "little")
    if size > max_header_bytes:
        raise SafetensorsError(
            [
                f"declares a {size:,}-byte header, over reconciler's limit of "
                f"{max_header_bytes:,} bytes for an adapter's header (a LoRA adapter's is tens "
                "of kB): the first 8 bytes are corrupt, or this is not an adapter's weights"
            ]
        )
    if size > file_size - 8:
        raise SafetensorsError(
            [
                f"declares a {size}-byte header but the whole file is {file_size} bytes: "
                "the file is truncated or not a safetensors file"
            ]
        )
    raw = f.read(size)
    if len(raw) != size:
        raise SafetensorsError(["changed size while it was read"])
    document = _decode(raw)
    metadata = _metadata(document.pop(METADATA_KEY, None))
    tensors, problems = _tensors(document)
    data_bytes = file_size - 8 - size
    if not problems:
        if not tensors:
            problems.append("holds no tensors: an adapter without weights cannot be uploaded")
        problems.extend(_layout(tensors, data_bytes))
    if problems:
        raise SafetensorsError(problems)
    return Header(size, data_bytes, tuple(tensors), metadata)


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsError(
            [f"header is not UTF-8 text (invalid byte at header offset {exc.start})"]
        ) from None
    # Newer reference readers insist on "{" first; a header padded at the front is not one
    # that any known writer produces.
    if not text.startswith("{"):
        raise SafetensorsError(["header does not start with '{': expected a JSON object"])
    try:
        document: object = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except json.JSONDecodeError as exc:
        raise SafetensorsError(
            [f"header is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"]
        ) from None
    except (ValueError, RecursionError) as exc:
        # duplicate keys, NaN/Infinity, integers too long to convert, or absurd nesting
        raise SafetensorsError([f"header is not acceptable JSON ({_clip(str(exc))})"]) from None
    if not isinstance(document, dict):
        raise SafetensorsError(["header is not a JSON object"])
    return document


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last duplicate silently; in a header that would hide a tensor
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {_name(key)} appears twice")
        result[key] = value
    return result


def _no_constant(token: str) -> None:
    raise ValueError(f"{token} is not a JSON number")


def _metadata(value: object) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SafetensorsError([f"{METADATA_KEY} must be an object mapping strings to strings"])
    return dict(value)


def _tensors(document: dict[str, Any]) -> tuple[list[Tensor], list[str]]:
    tensors: list[Tensor] = []
    problems: list[str] = []
    for name, entry in document.items():
        found = _tensor(name, entry)
        if isinstance(found, Tensor):
            tensors.append(found)
        else:
            problems.append(found)
    tensors.sort(key=lambda t: (t.begin, t.end))
    return tensors, _capped(problems)


def _tensor(name: str, entry: object) -> Tensor | str:
    # The common case, a well-formed entry, in as few operations as possible: a header of
    # thousands of tensors is checked on every cold plan. Anything unusual takes the slow
    # path below, which says what is wrong.
    if type(entry) is dict and len(entry) == 3:
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if type(offsets) is list and len(offsets) == 2 and type(shape) is list:
            begin, end = offsets
            bits = DTYPE_BITS.get(dtype) if type(dtype) is str else None
            if bits is not None and type(begin) is int and type(end) is int and 0 <= begin <= end:
                for dim in shape:
                    if type(dim) is not int or dim < 0 or bits > 8 * 2**64:
                        break  # the slow path says why (or that it is too large)
                    bits *= dim
                else:
                    if bits == 8 * (end - begin):
                        return Tensor(name, dtype, tuple(shape), begin, end)  # type: ignore[arg-type]
    return _checked_tensor(name, entry)


def _checked_tensor(name: str, entry: object) -> Tensor | str:
    label = f"tensor {_name(name)}"
    if not isinstance(entry, dict):
        return f"{label} is not an object with dtype, shape and data_offsets"
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        return f"{label} has no {', '.join(missing)}"
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        return (
            f"{label} has dtype {_clip(json.dumps(dtype))}, which is not a safetensors dtype "
            f"(expected one of {', '.join(DTYPE_BITS)})"
        )
    if not isinstance(shape, list) or not all(_natural(d) for d in shape):
        return f"{label} has shape {_clip(json.dumps(shape))}: expected a list of integers >= 0"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_natural(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        return (
            f"{label} has data_offsets {_clip(json.dumps(offsets))}: "
            "expected [begin, end] with 0 <= begin <= end"
        )
    begin, end = offsets
    bits = _bits(dtype, shape)
    if bits is None:
        return f"{label} has shape {_clip(json.dumps(shape))}: too large for any file"
    if bits % 8:
        return f"{label} of {dtype} holds {bits} bits, not a whole number of bytes"
    if bits // 8 != end - begin:
        return (
            f"{label} spans {end - begin} bytes (data_offsets [{begin}, {end}]) but "
            f"shape {_clip(json.dumps(shape))} of {dtype} needs {bits // 8} bytes"
        )
    return Tensor(name, dtype, tuple(shape), begin, end)


def _natural(value: object) -> bool:
    # bool is an int in Python, and true is no dimension
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _bits(dtype: str, shape: list[int]) -> int | None:
    """Bits a tensor's data holds, or None past 2**64 bytes: the reference reader counts in
    u64 and calls that an overflow, and stopping early keeps a header of huge dimensions from
    making us multiply ever-growing integers."""
    if 0 in shape:
        return 0
    bits = DTYPE_BITS[dtype]
    for dim in shape:
        bits *= dim
        if bits > 8 * 2**64:
            return None
    return bits


def _layout(tensors: list[Tensor], data_bytes: int) -> list[str]:
    """The tensors, sorted by offset, must tile the data buffer exactly."""
    problems: list[str] = []
    cursor = 0
    previous: Tensor | None = None
    for t in tensors:
        if t.begin < cursor and previous is not None:
            problems.append(
                f"tensors {_name(previous.name)} (bytes {previous.begin}..{previous.end}) and "
                f"{_name(t.name)} (bytes {t.begin}..{t.end}) overlap in the data buffer"
            )
        elif t.begin > cursor:
            problems.append(
                f"bytes {cursor}..{t.begin} of the data buffer belong to no tensor "
                "(the format allows no gaps)"
            )
        if previous is None or t.end > cursor:
            previous = t
        cursor = max(cursor, t.end)
    problems = _capped(problems)
    if cursor > data_bytes:
        problems.append(
            f"is truncated: the header describes {cursor} bytes of tensor data but only "
            f"{data_bytes} follow it ({cursor - data_bytes} bytes missing)"
        )
    elif cursor < data_bytes:
        problems.append(
            f"has {data_bytes - cursor} bytes after the last tensor's data that belong to no "
            "tensor (the format allows no trailing bytes)"
        )
    return problems


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_LISTED:
        return problems
    return [*problems[:MAX_LISTED], f"... and {len(problems) - MAX_LISTED} more like these"]


def _name(name: str) -> str:
    return _clip(json.dumps(name))  # quoted and escaped: names may hold anything


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
