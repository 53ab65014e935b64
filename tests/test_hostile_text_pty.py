"""The lying Cloudflare API of test_hostile_text.py, with the CLI in a real pseudo-terminal
(pexpect): on a terminal click strips nothing and colour is on, so whatever a view lets
through reaches the terminal as it is. Only our own colour codes may be there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_hostile_text import WRITTEN, Liar, assert_inert, lying, pointed_at, stock
from test_terminal_pty import finish, spawn

# what click.style writes: Select Graphic Rendition, and nothing else
OURS = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def liar() -> Iterator[Liar]:
    with lying() as app:
        yield app


COMMANDS: list[tuple[str, ...]] = [("test",), ("public",), ("list",), ("drift",), ("plan",)]


@pytest.mark.parametrize("everywhere", [False, True], ids=["free-text", "everywhere"])
@pytest.mark.parametrize("args", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_nothing_hostile_reaches_a_terminal(
    liar: Liar, project: Path, args: tuple[str, ...], everywhere: bool
) -> None:
    # free text only: the views show it; everywhere: names and ids too, which the client may
    # refuse at its boundary, and then its message is what reaches the terminal
    stock(liar, everywhere=everywhere)
    child = spawn(*args, "-c", project, **pointed_at(liar))
    output, status = finish(child)
    assert status in (0, 1, 2), output
    assert "Traceback" not in output and "Internal error" not in output, output
    assert liar.calls
    # the terminal writes each line break as CR LF; any other CR came from outside
    text = OURS.sub("", output.replace("\r\n", "\n"))
    assert_inert(text)
    if not everywhere and args[0] in ("test", "public", "plan"):
        assert WRITTEN.search(text), text  # shown, written out
    if args[0] in ("test", "drift"):
        assert "\x1b[" in output  # colour was on: this is the terminal's view
