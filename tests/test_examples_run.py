"""Each provider's example runs as its header says, against the built-in sandbox (`--sandbox`),
from a copy of the folder: apply, the command the header names, then a plan with nothing to do.
The quick start has tests of its own (test_quickstart.py, test_install_lines.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, Cli

# the variables a real setup would set: none of them may reach, or be needed by, the sandbox
REAL = ("FIREWORKS_", "VLLM_", "CLOUDFLARE_", "CO_", "HF_")


@pytest.mark.parametrize(
    ("example", "then"),
    [("fireworks", ("test", "--sandbox")), ("vllm", ("list", "--sandbox"))],
)
def test_an_example_runs_as_its_header_says(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    example: str,
    then: tuple[str, ...],
) -> None:
    for name in [n for n in os.environ if n.startswith(REAL)]:
        monkeypatch.delenv(name)
    folder = tmp_path / example
    shutil.copytree(
        ROOT / "examples" / example,
        folder,
        ignore=shutil.ignore_patterns(".reconciler", "*.lock", ".*.apply-lock", "store"),
    )
    config = folder / "finetunes.yaml"
    header = config.read_text().splitlines()[2]
    assert "reconciler apply --sandbox --auto-approve && reconciler " + " ".join(then) in header
    applied = cli("apply", "-c", config, "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 1 created" in applied.output
    after = cli(*then, "-c", config)
    assert after.exit_code == 0, after.output
    again = cli("plan", "-c", config, "--sandbox", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
