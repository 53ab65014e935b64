"""The README's first two lines work as pasted, one after the other, on a fresh clone; the
distribution name is one of our own on the package index, and no install line pretends it is
published there; the install lines agree with CI, which builds the docs and the distributions
before it ends with the README's tests."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from conftest import QUICKSTART, ROOT

README = ROOT / "README.md"
INSTALL = "python3 -m venv .venv && .venv/bin/pip install . && "
TESTS = "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/pytest"
# "reconciler" on the package index is an unrelated pandas utility
DISTRIBUTION = "finetune-reconciler"


def first_lines() -> tuple[str, str]:
    block = README.read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    first, second = block.splitlines()[:2]
    return first, second


def test_the_first_line_leaves_the_shell_where_the_second_line_works(tmp_path: Path) -> None:
    first, second = first_lines()
    assert first.startswith(INSTALL), first
    assert second == TESTS
    # a fresh clone's layout, with .venv/bin/reconciler standing for the one just installed
    clone = tmp_path / "clone"
    shutil.copytree(
        QUICKSTART,
        clone / "examples" / "quickstart",
        ignore=shutil.ignore_patterns(".reconciler", "*.lock"),
    )
    venv_bin = clone / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    script = venv_bin / "reconciler"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUDFLARE_", "CO_", "RECONCILER_"))
    }
    # the rest of the first line as pasted, then where the shell is left
    pasted = first[len(INSTALL) :] + "\npwd"
    result = subprocess.run(
        ["bash", "-c", pasted], cwd=clone, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == str(clone)  # where `.venv/bin/pytest` is
    assert "Apply complete: 2 created, 4 uploaded, 0 forgotten." in result.stdout
    assert "No changes." in result.stdout


def _install_lines(text: str) -> list[str]:
    blocks = [b.split("```", 1)[0] for b in text.split("```sh\n")[1:]]
    return "\n".join(blocks).splitlines()


def test_the_distribution_has_a_name_of_its_own_and_the_readme_says_how_to_install_it() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib is Python 3.11+)
    assert re.search(r'^name = "([^"]+)"$', pyproject, re.M).group(1) == DISTRIBUTION  # type: ignore[union-attr]
    assert '\n[project.scripts]\nreconciler = "reconciler.cli.main:main"\n' in pyproject
    readme = README.read_text()
    # what works today, nothing being published: a checkout, a git URL naming the
    # distribution (pip refuses "reconciler @ git+..."), a built wheel
    assert "pipx install ." in readme
    assert f'pipx install "{DISTRIBUTION} @ git+https://' in readme
    assert re.search(r"pipx install dist/finetune_reconciler-[\d.]+-py3-none-any\.whl", readme)
    # and how the quick start's bare `reconciler` gets onto PATH
    assert "source .venv/bin/activate" in readme
    for page in [README, *(ROOT / "docs").rglob("*.md")]:
        for line in _install_lines(page.read_text()):
            # no install line names the index's "reconciler", which is someone else's
            assert not re.search(r"pip(x)? install (-U )?['\"]?reconciler\b", line), line
            # nor installs finetune-reconciler from the index, where it is not published
            bare = rf"pip(x)? install (-U )?['\"]?{DISTRIBUTION}(\[\w+\])?['\"]?\s*($|#)"
            assert not re.search(bare, line), (page.name, line)


def test_ci_installs_as_the_readme_says() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/pip install --quiet '.[test]' && .venv/bin/pytest" in ci
    assert first_lines()[1] == TESTS


def test_ci_builds_the_docs_and_the_distributions_then_ends_with_the_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    order = [
        ".venv/bin/pip install --quiet '.[docs]'",
        ".venv/bin/mkdocs build --strict",
        ".venv/bin/python -m build ",
        ".venv/bin/twine check --strict",
        ".venv/bin/pip install --quiet '.[test]' && .venv/bin/pytest",
        ".venv/bin/lint-imports",
    ]
    places = [ci.find(step) for step in order]
    assert -1 not in places, [s for s, at in zip(order, places, strict=True) if at == -1]
    assert places == sorted(places)
    # it still ends with the README's tests and the architecture contracts
    commands = [line for line in ci.splitlines() if line and not line.startswith("#")]
    assert commands[-1].startswith(".venv/bin/lint-imports")
    assert commands[-2] == order[4]


def test_the_docs_home_page_shows_the_same_two_lines() -> None:
    home = (ROOT / "docs" / "index.md").read_text()
    block = home.split("```sh\n", 1)[1].split("```", 1)[0]
    assert tuple(block.splitlines()[:2]) == first_lines()
