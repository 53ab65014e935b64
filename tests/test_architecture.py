"""The architecture as tests: import-linter's contracts (pyproject.toml) hold, a broken one fails
the run, no module imports another in a cycle, and the house keeps its figures."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reconciler"
LINT = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
]
PROVIDERS = {"cloudflare", "cohere", "fireworks", "vllm"}


def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LINT, "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_the_contracts_hold() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_broken_contract_fails_the_run(tmp_path: Path) -> None:
    """The pure plan made to import the network: lint-imports, as .ci/run runs it, fails."""
    shutil.copytree(PACKAGE, tmp_path / "reconciler", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planner = tmp_path / "reconciler" / "plan" / "planner.py"
    planner.write_text(planner.read_text() + "\nimport httpx  # a violation\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    assert "The plan is pure" in done.stdout and "BROKEN" in done.stdout


def _cycles() -> list[list[str]]:
    """Strongly connected groups of modules (function-local imports included)."""
    graph = grimp.build_graph("reconciler", include_external_packages=False)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = [stack.pop()]
            while group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_module_imports_another_in_a_cycle() -> None:
    assert _cycles() == []


def test_at_most_six_modules_lie_loose_at_the_top() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 6, loose


def test_no_function_is_over_80_lines() -> None:
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {lines}")
    assert long == []


def test_no_provider_name_is_a_string_outside_its_rooms() -> None:
    """The core asks the registry; it never compares or keys on a provider's name."""
    named = []
    for path in PACKAGE.rglob("*.py"):
        room = path.relative_to(PACKAGE).parts[0]
        if room in ("providers", "sandbox"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in PROVIDERS:
                named.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert named == []


def _strings(tree: ast.AST) -> list[str]:
    """The string constants of a module that are not docstrings or comments."""
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_the_state_folder_is_spelled_in_one_module() -> None:
    holders = sorted(
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if any(".reconciler" in s for s in _strings(ast.parse(p.read_text())))
    )
    assert holders == ["reconciler/project.py"]


def test_every_json_file_the_package_ships_parses() -> None:
    """Data files are read at run time: one a formatter or a hand edit broke fails here, not
    in a user's first command."""
    import json

    for path in [*PACKAGE.rglob("*.json"), *(ROOT / "schemas").glob("*.json")]:
        json.loads(path.read_text("utf-8"))


def test_the_command_lines_start_up_imports_no_heavy_library() -> None:
    """`reconciler --help` reads every provider's spec (to add its commands): the specs must
    not pull in what only a config, a plan or a request needs."""
    heavy = ("yaml", "jsonschema", "httpx", "deepdiff", "werkzeug", "rich", "huggingface_hub")
    code = "import sys, reconciler.cli.main; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert sorted(loaded & set(heavy)) == []
