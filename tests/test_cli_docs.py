"""Every command has help text (as sqlite-utils checks), and the documentation cannot drift: the
CLI reference is generated from the click commands (mkdocs-click), the config reference from
the JSON Schema (docs/hooks/schema_reference.py), and the README links to pages that exist."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import click
import pytest
import yaml
from conftest import ROOT, Cli

from reconciler.cli.main import main

COMMANDS = sorted(main.commands)
DOCS = ROOT / "docs"
CLI_PAGE = DOCS / "reference" / "cli.md"
CONFIG_PAGE = DOCS / "reference" / "config.md"


def test_there_are_commands() -> None:
    assert {"validate", "plan", "apply", "sandbox"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help(cli: Cli, name: str) -> None:
    command = main.commands[name]
    assert command.help and len(command.help.strip()) > 20
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{name} {param.opts} has no help text"
    for sub in getattr(command, "commands", {}).values():
        assert sub.help and len(sub.help.strip()) > 20, f"{name} {sub.name} has no help text"
    result = cli(name, "--help")
    assert result.exit_code == 0
    assert f"Usage: main {name}" in result.stdout or f"Usage: reconciler {name}" in result.stdout


def test_the_cli_reference_is_generated_from_the_command_group() -> None:
    page = CLI_PAGE.read_text()
    block = page.split("::: mkdocs-click\n", 1)[1]
    options = dict(re.findall(r"^    :(\w+): (.+)$", block, re.M))
    assert options["module"] == "reconciler.cli.main"
    assert options["command"] == "main"
    assert options["prog_name"] == "reconciler"
    assert getattr(importlib.import_module(options["module"]), options["command"]) is main


def _walk(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _walk(command, f"{prefix} {name}")


def test_the_cli_reference_names_every_command_and_option() -> None:
    """What the site builds from that block (run only where the docs extra is installed:
    CI installs it before the tests)."""
    markdown = pytest.importorskip("markdown")
    pytest.importorskip("mkdocs_click")
    html = markdown.Markdown(extensions=["mkdocs-click", "fenced_code"]).convert(
        CLI_PAGE.read_text()
    )
    for path, command in _walk(main, "reconciler"):
        assert f">{path}<" in html or f">{path} " in html, f"{path} is not on the page"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.opts[-1] in html, f"{path} {param.opts[-1]} is not on the page"


def _schema_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "schema_reference", DOCS / "hooks" / "schema_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            yield key
            yield from _keys(value)
        for key, value in node.items():
            if key != "properties":
                yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def test_the_config_reference_is_generated_with_every_key_of_the_schema() -> None:
    hook = _schema_reference()
    assert hook.MARKER in CONFIG_PAGE.read_text()
    assert hook.SCHEMA == ROOT / "schemas" / "finetunes.schema.json"
    schema = json.loads(hook.SCHEMA.read_text())
    text = hook.on_page_markdown(CONFIG_PAGE.read_text())
    assert hook.MARKER not in text
    for key in set(_keys(schema)):
        assert re.search(rf"^\| `([\w.\[\]]+\.)?{re.escape(key)}` \|", text, re.M), key
    # a key added to the schema appears without anyone touching the page
    schema["$defs"]["cloudflareFinetune"]["properties"]["brand_new_key"] = {
        "description": "Added for this test.",
        "type": "string",
    }
    added = hook.reference_markdown(schema)
    assert "| `brand_new_key` | string |  |  | Added for this test. |" in added


def _nav_pages(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for entry in nav:
            yield from _nav_pages(entry)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_pages(value)


def test_the_readme_links_to_every_docs_page_and_each_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)\s]*)?\)", readme)
    assert links, "the README links to no docs page"
    for link in links:
        assert (ROOT / link).is_file(), f"the README links to {link}, which does not exist"
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = set(_nav_pages(nav))
    assert {"index.md", "reference/cli.md", "reference/config.md"} <= pages
    for page in pages:
        assert (DOCS / page).is_file(), f"mkdocs.yml names {page}, which does not exist"
        assert f"docs/{page}" in links, f"the README does not link to docs/{page}"
    written = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert written <= pages, f"pages not in mkdocs.yml's nav: {sorted(written - pages)}"


def test_the_readme_is_a_landing_page() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_every_sandbox_package_readme_points_at_its_docs_page() -> None:
    for package in ("vllm", "fireworks"):
        text = (ROOT / "reconciler" / "sandbox" / package / "README.md").read_text()
        link = f"../../../docs/sandbox/{package}.md"
        assert f"]({link})" in text
        assert (ROOT / "reconciler" / "sandbox" / package / link).resolve().is_file()


def test_the_docs_say_no_path_that_is_gone() -> None:
    """A path in backticks that names a file of this repository exists (pages moved from the
    README once named modules that had since moved)."""
    named = re.compile(r"`((?:reconciler|schemas|tests|examples|bench)/[\w./-]+)`")
    for page in DOCS.rglob("*.md"):
        for path in named.findall(page.read_text()):
            if "*" not in path and "<" not in path:
                assert (ROOT / path.rstrip("/")).exists(), f"{page.relative_to(ROOT)}: {path}"
