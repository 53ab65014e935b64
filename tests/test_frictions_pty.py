"""Frictions of issue 21 that are about the terminal, in a real pseudo-terminal (pexpect)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_terminal_pty import ANSI, BIG, UPLOADS, big_safetensors, finish, slow, spawn

from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.server import SandboxServer

__all__ = ["slow"]  # the fixture, used by name


def test_an_upload_the_server_stalls_says_stalled_not_its_last_rate(
    slow: SandboxServer, project: Path
) -> None:
    """The throttled sandbox sleeps 3 s before reading an upload: the client's bytes stop once
    the socket's buffers are full. Before: the bar kept its last rate and time left."""
    big_safetensors(project.parent / "adapters" / "support-v3" / "adapter_model.safetensors", BIG)
    child = spawn("apply", "-c", project, "--auto-approve", server=slow)
    child.expect(r"upload adapter_model\.safetensors.*?stalled for \d")
    output, status = finish(child)
    assert status == 0, output
    assert "Apply complete" in ANSI.sub("", output)
    assert re.search(r"uploaded \(32\.0 MiB", ANSI.sub("", output))


def test_ctrl_c_during_the_last_upload_exits_130_though_everything_finished(
    slow: SandboxServer, project: Path
) -> None:
    """Before: every step under way finished, so the apply said "Apply complete", exit 0."""
    text = project.read_text()
    project.write_text(text[: text.index("  - name: faq-bot-v1")])  # one finetune: 3 steps
    child = spawn("apply", "-c", project, "--auto-approve", server=slow, NO_COLOR="1")
    child.expect(r"upload adapter_model\.safetensors")  # the last step, in flight
    child.sendintr()
    child.expect(r"Interrupted: finishing what is in flight", timeout=2)
    output, status = finish(child)
    text = ANSI.sub("", output)
    assert status == 130, text
    assert "upload adapter_model.safetensors: uploaded" in text
    assert "Apply complete" not in text
    assert "Apply interrupted: 1 created, 2 uploaded, 0 forgotten; nothing was left" in text


@pytest.fixture
def narrow(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox whose asset uploads go over a 6 MB/s link (the `bandwidth=` fault)."""
    spec = FaultSpec.parse(f"route={UPLOADS}; bandwidth=6MB/s")
    with SandboxServer(tmp_path / "narrow-data", faults=spec) as server:
        yield server


def test_an_upload_over_a_slow_link_shows_its_rate_and_time_left_as_it_goes(
    narrow: SandboxServer, project: Path
) -> None:
    """The sandbox had latency faults but no bandwidth limit, so a bar could not be watched
    filling: 32 MiB at 6 MB/s takes about 5 s, long enough to see the bytes, rate and time left
    move."""
    big_safetensors(project.parent / "adapters" / "support-v3" / "adapter_model.safetensors", BIG)
    child = spawn("apply", "-c", project, "--auto-approve", server=narrow, NO_COLOR="1")
    live = (
        r"upload adapter_model\.safetensors.*? ([\d.]+) MiB / 32\.0 MiB"
        r" +[\d.]+ [KM]iB/s +[\d.]+s left"
    )
    child.expect(live, timeout=30)
    first = float(child.match.group(1))
    child.expect(live, timeout=30)
    while float(child.match.group(1)) <= first:  # the same bar, further on
        child.expect(live, timeout=30)
    output, status = finish(child)
    assert status == 0, output
    assert re.search(r"uploaded \(32\.0 MiB", ANSI.sub("", output))
    assert any(f.kind == "bandwidth" for f in narrow.fault_log)
