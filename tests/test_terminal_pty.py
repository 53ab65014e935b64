"""The CLI in a real pseudo-terminal (pexpect), as a person runs it: live upload progress, the
confirmation prompt's Ctrl-C and Ctrl-D, Ctrl-C during an apply, colour.

The sandbox runs in this process on 127.0.0.1, throttled by its fault injection (latency on
the asset uploads), so that an upload is in flight long enough to be seen and interrupted.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import ACCOUNT, CANARY_TOKEN

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.server import SandboxServer

UPLOADS = "POST /client/v4/accounts/*/ai/finetunes/*/finetune-assets"
BIG = 32 << 20  # the adapter_model.safetensors of support-bot-v3, made this big
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def big_safetensors(path: Path, size: int) -> None:
    """A valid safetensors file of about `size` bytes, of the rank its adapter_config.json
    declares, whose tensor data is a hole (no disk used)."""
    rank = json.loads((path.parent / "adapter_config.json").read_text())["r"]
    columns = (size - 8 - 256) // (4 * rank)
    payload = 4 * rank * columns
    header = {
        "__metadata__": {"format": "pt"},
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {
            "dtype": "F32",
            "shape": [rank, columns],
            "data_offsets": [0, payload],
        },
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (256 - len(raw))
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + payload)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox whose asset uploads each take 3 s: the server sleeps before reading them."""
    spec = FaultSpec.parse(f"route={UPLOADS}; latency=3s")
    with SandboxServer(tmp_path / "slow-data", faults=spec) as server:
        yield server


def spawn(
    *args: str | Path,
    server: SandboxServer | None = None,
    cwd: Path | None = None,
    **env: str,
) -> pexpect.spawn:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUDFLARE_", "CO_", "RECONCILER_")) and k not in ("NO_COLOR",)
    }
    environment.update(TERM="xterm-256color", RECONCILER_HTTP_BACKOFF="0.05")
    if server is not None:
        environment.update(
            CLOUDFLARE_API_TOKEN=DEFAULT_TOKEN,
            CLOUDFLARE_ACCOUNT_ID=ACCOUNT,
            CLOUDFLARE_API_BASE_URL=server.cloudflare_base_url,
        )
    environment.update(env)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "reconciler", *(str(a) for a in args)],
        env=environment,
        cwd=str(cwd) if cwd else None,
        dimensions=(40, 180),
        encoding="utf-8",
        codec_errors="replace",
        timeout=30,
    )
    return child


def finish(child: pexpect.spawn) -> tuple[str, int]:
    """Everything the child printed from here on, and its exit status."""
    rest = child.read()
    child.close()
    output = str(child.before or "") + rest
    assert CANARY_TOKEN not in output
    return output, child.exitstatus if child.exitstatus is not None else -(child.signalstatus or 0)


def posts(server: SandboxServer) -> list[tuple[str, str]]:
    return [c for c in server.request_log if c[0] == "POST"]


def finetunes(server: SandboxServer) -> list[str]:
    import httpx

    response = httpx.get(
        f"{server.cloudflare_base_url}/accounts/{ACCOUNT}/ai/finetunes",
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )
    return sorted(f["name"] for f in response.json()["result"])


def test_uploads_show_live_progress_with_bytes_rate_and_time_left(
    slow: SandboxServer, project: Path
) -> None:
    big_safetensors(project.parent / "adapters" / "support-v3" / "adapter_model.safetensors", BIG)
    child = spawn("apply", "-c", project, "--auto-approve", server=slow)
    # a live line while the 32 MiB upload waits on the throttled server: what, how much, of what
    child.expect(r"support-bot-v3  upload adapter_model\.safetensors.*? / 32\.0 MiB")
    output, status = finish(child)
    assert status == 0, output
    text = ANSI.sub("", output)
    assert "Apply complete: 2 created, 4 uploaded, 0 forgotten." in text
    # the finished line stays, in the plan's units, with how long it took and how fast
    assert re.search(
        r"ok  support-bot-v3: upload adapter_model\.safetensors: uploaded \(32\.0 MiB, "
        r"sha256:[0-9a-f]{12}…\) in \d+\.\ds, [\d.]+ [KM]iB/s",
        text,
    ), text
    # the bars are gone once done (transient), and no log-style start lines on a terminal
    assert "uploading adapter_model" not in text


def test_first_ctrl_c_says_what_it_finishes_and_starts_no_new_step(
    slow: SandboxServer, project: Path
) -> None:
    # NO_COLOR: the messages matched below have no escape codes inside them
    child = spawn("apply", "-c", project, "--auto-approve", server=slow, NO_COLOR="1")
    child.expect(r"upload adapter_config\.json")  # a live line: uploads are in flight
    child.sendintr()
    # said at once, while the uploads in flight still have seconds to go
    child.expect(r"Interrupted: finishing what is in flight \(", timeout=2)
    child.expect(r"Press Ctrl-C again to stop at once", timeout=2)
    output, status = finish(child)
    text = ANSI.sub("", output)
    assert status == 130, text
    assert "upload adapter_config.json: uploaded" in text  # what was in flight finished
    assert "not started" in text and "the apply was interrupted" in text
    assert "Apply interrupted:" in text
    # only what was in flight was sent: each finetune's first upload at most
    sent = len([c for c in posts(slow) if c[1].endswith("/finetune-assets")])
    assert 1 <= sent <= 2
    # and the next apply finishes the job, making nothing twice
    again = spawn("apply", "-c", project, "--auto-approve", server=slow)
    output, status = finish(again)
    assert status == 0, output
    assert f"{4 - sent} uploaded" in ANSI.sub("", output)
    assert finetunes(slow) == ["faq-bot-v1", "support-bot-v3"]


def test_second_ctrl_c_stops_at_once_and_the_next_apply_converges(
    slow: SandboxServer, project: Path
) -> None:
    child = spawn("apply", "-c", project, "--auto-approve", server=slow, NO_COLOR="1")
    child.expect(r"upload adapter_config\.json")
    child.sendintr()
    child.expect(r"Press Ctrl-C again", timeout=2)
    child.sendintr()
    child.expect(r"Stopped at once", timeout=2)
    output, status = finish(child)
    assert status == 130, output
    # the journal lets the next apply pick up what was cut off: nothing made twice
    again = spawn("apply", "-c", project, "--auto-approve", server=slow)
    output, status = finish(again)
    assert status == 0, output
    check = spawn("plan", "-c", project, "--detailed-exitcode", server=slow)
    output, status = finish(check)
    assert status == 0, output
    assert finetunes(slow) == ["faq-bot-v1", "support-bot-v3"]


@pytest.mark.parametrize("key", ["ctrl-c", "ctrl-d"])
def test_ctrl_c_or_ctrl_d_at_the_prompt_cancels_cleanly(
    slow: SandboxServer, project: Path, key: str
) -> None:
    child = spawn("apply", "-c", project, server=slow)
    child.expect("Enter a value:")
    if key == "ctrl-c":
        child.sendintr()
    else:
        child.sendeof()
    output, status = finish(child)
    assert status == 1, output
    assert "Apply cancelled; nothing was changed." in output
    assert "Internal error" not in output and "Abort" not in output
    assert posts(slow) == []
    assert not project.with_suffix(".lock").exists()


def test_only_yes_approves_at_the_prompt(slow: SandboxServer, project: Path) -> None:
    child = spawn("apply", "-c", project, server=slow)
    child.expect("Enter a value:")
    child.sendline("y")
    output, status = finish(child)
    assert status == 1 and "Apply cancelled; nothing was changed." in output
    assert posts(slow) == []


def test_colour_on_a_terminal_and_off_with_no_color(cf_env: SandboxServer, project: Path) -> None:
    # an unmanaged finetune makes drift report something (and colour it)
    import httpx

    httpx.post(
        f"{cf_env.cloudflare_base_url}/accounts/{ACCOUNT}/ai/finetunes",
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        json={"name": "by-hand", "model": "@cf/mistral/mistral-7b-instruct-v0.2-lora"},
    ).raise_for_status()
    runs = {
        "plain": spawn("drift", "-c", project, server=cf_env),
        "--no-color": spawn("drift", "-c", project, "--no-color", server=cf_env),
        "group --no-color": spawn("--no-color", "drift", "-c", project, server=cf_env),
        "NO_COLOR": spawn("drift", "-c", project, server=cf_env, NO_COLOR="1"),
    }
    outputs = {name: finish(child) for name, child in runs.items()}
    text, status = outputs["plain"]
    assert status == 2, text
    assert "\x1b[" in text and "by-hand" in text
    for name in ("--no-color", "group --no-color", "NO_COLOR"):
        text, status = outputs[name]
        assert status == 2 and "by-hand" in text, (name, text)
        assert "\x1b[" not in text, name


def test_validate_colours_errors_on_a_terminal(project: Path) -> None:
    project.write_text(project.read_text().replace("adapters/faq-v1/", "adapters/nowhere/"))
    coloured, status = finish(spawn("validate", "-c", project))
    assert status == 1
    assert "\x1b[" in coloured and "does not exist" in coloured
    plain, status = finish(spawn("validate", "-c", project, "--no-color"))
    assert status == 1 and "\x1b[" not in plain and "error: finetune 'faq-bot-v1'" in plain


def test_a_slow_plan_shows_a_spinner_on_a_terminal(tmp_path: Path, project: Path) -> None:
    spec = FaultSpec.parse("route=GET /client/v4/accounts/*/ai/finetunes; latency=1.5s")
    with SandboxServer(tmp_path / "slow-list", faults=spec) as server:
        child = spawn("plan", "-c", project, server=server)
        child.expect("Planning: hashing adapter files, reading the accounts")
        output, status = finish(child)
    assert status == 0, output
    assert "Plan: 2 to create" in output


def test_long_hashing_shows_how_far_it_has_come(tmp_path: Path, project: Path) -> None:
    # a 3 GiB sparse adapter: no disk, but its holes are hashed as the zeros they read as,
    # which takes a couple of seconds of CPU: long enough to see the line move
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.data import write_safetensors

    weights = project.parent / "adapters" / "faq-v1" / "adapter_model.safetensors"
    write_safetensors(weights, 3 * 1024**3, sparse=True)
    project.write_text(
        project.read_text().replace(
            "    account_id:", "    limits: {max_asset_bytes: 4000000000}\n    account_id:"
        )
    )
    with SandboxServer(tmp_path / "remote") as server:
        child = spawn("plan", "-c", project, server=server)
        child.expect(r"\(hashing [0-9.]+ [KMG]iB of 3\.0 GiB")
        output, status = finish(child)
    assert status == 0, output
    assert "Plan: 2 to create" in output
