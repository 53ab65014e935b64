"""Start-up: `reconciler --help` and `reconciler validate` against `python -c pass`, and which
imports cost what (from `python -X importtime`), with the chain of modules that pulled each in.

The issue sets no number; the goals here are ours: --help within 100 ms of a bare interpreter
(click alone costs ~25 ms), validate within 200 ms (it must parse YAML and check a JSON Schema).
What only a terminal needs (rich, for apply's live progress, ~30 ms) must be imported only
when it draws: the last figure counts the modules of it that `--help` and `validate` import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.common import ROOT, Figure, alternate, reconciler_cmd, say, spread, timed

ACCOUNT = "0" * 31 + "1"


@dataclass
class Node:
    name: str
    self_us: int
    cumulative_us: int
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None


def import_tree(stderr: str) -> list[Node]:
    """-X importtime prints children before their parent, indented one level deeper."""
    pending: list[tuple[int, Node]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:") :].split("|")
        self_us, cumulative_us, raw = parts[0], parts[1], parts[2]
        depth = (len(raw) - len(raw.lstrip(" ")) - 1) // 2
        node = Node(raw.strip(), int(self_us), int(cumulative_us))
        while pending and pending[-1][0] > depth:
            child = pending.pop()[1]
            child.parent = node
            node.children.insert(0, child)
        pending.append((depth, node))
    return [n for _, n in pending]


def _walk(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    for n in nodes:
        out.append(n)
        out.extend(_walk(n.children))
    return out


def heavy_imports(stderr: str, floor_ms: float = 8.0) -> list[str]:
    """Third-party packages pulled in by reconciler modules, costliest first, each with the
    chain of reconciler modules that imported it."""
    found: list[tuple[int, str]] = []
    for node in _walk(import_tree(stderr)):
        parent = node.parent
        if parent is None or node.name.startswith("reconciler"):
            continue
        if not parent.name.startswith("reconciler") or node.cumulative_us < floor_ms * 1000:
            continue
        chain = []
        p: Node | None = parent
        while p is not None:
            chain.append(p.name)
            p = p.parent
        text = f"{node.name} {node.cumulative_us / 1000:.0f} ms <- " + " <- ".join(chain)
        found.append((node.cumulative_us, text))
    return [text for _, text in sorted(found, reverse=True)]


def run(tmp: Path, quick: bool) -> list[Figure]:
    runs = 7 if quick else 15
    project = tmp / "quickstart"
    shutil.copytree(
        ROOT / "examples" / "quickstart",
        project,
        ignore=shutil.ignore_patterns(".reconciler", "*.lock"),
    )
    config = project / "finetunes.yaml"
    env = dict(os.environ, CLOUDFLARE_ACCOUNT_ID=ACCOUNT)
    # as an installed command starts: from cached bytecode (the first run writes it; the
    # figure is the best run).
    # With PYTHONDONTWRITEBYTECODE, as some sandboxes and CI images set it, every run would
    # compile each of our modules again, which is not what a user's shell does.
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def command(*args: str) -> float:
        return timed(lambda: subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL))

    bare = [sys.executable, "-c", "pass"]
    cli = reconciler_cmd()
    figures = []
    for what, args, allowance in (
        ("reconciler --help", [*cli, "--help"], 0.100),
        ("reconciler validate (quick start)", [*cli, "validate", "-c", str(config)], 0.200),
    ):
        base, ours = alternate(runs, lambda: command(*bare), partial(command, *args))
        say(f"  python -c pass: {spread(base)}; {what}: {spread(ours)}")
        added = min(ours) - min(base)
        figures.append(
            Figure(
                "startup",
                f"{what} (s)",
                min(ours),
                "s",
                min(base),
                "python -c pass",
                min(ours) / min(base),
                f"<= +{allowance * 1000:.0f} ms",
                added <= allowance,
                note=f"adds {added * 1000:.0f} ms to a bare interpreter",
            )
        )

    lazy = ("rich", "pygments", "markdown_it")  # the terminal layer's, imported when drawing
    eager: list[str] = []
    for what, args in (
        ("--help", ["--help"]),
        ("validate", ["validate", "-c", str(config)]),
    ):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "reconciler", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        heavy = heavy_imports(result.stderr)
        total = sum(n.cumulative_us for n in import_tree(result.stderr)) / 1000
        say(f"  imports for `reconciler {what}`: {total:.0f} ms in all; the heavy ones:")
        for line in heavy[:10] or ["(none over 8 ms)"]:
            say(f"    {line}")
        eager += [
            f"{n.name} ({what})"
            for n in _walk(import_tree(result.stderr))
            if n.name.split(".")[0] in lazy
        ]
    figures.append(
        Figure(
            "startup",
            "terminal-only modules imported at start-up",
            float(len(eager)),
            "mods",
            None,
            "-",
            None,
            "0 (imported when drawing)",
            not eager,
            note=", ".join(eager[:5]),
        )
    )
    return figures
