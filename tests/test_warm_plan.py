"""A warm plan reads no byte of an unchanged adapter, and its caches never hide a change.

Reads are watched with inotify (Linux): the kernel reports every read of a watched file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import Cli
from test_statcache import IN_ACCESS, watching

from reconciler.sandbox.server import SandboxServer
from reconciler.state.statcache import GRANULARITY_NS


def warm(cli: Cli, project: Path) -> None:
    """Past the cache's racy window, then a plan that fills the cache."""
    time.sleep(GRANULARITY_NS / 1e9 + 0.1)
    assert cli("plan", "-c", project).exit_code == 0


@pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")
def test_a_warm_plan_reads_no_adapter_byte(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    warm(cli, project)
    adapters = sorted(project.parent.glob("adapters/*/*"))
    with watching(*adapters) as watch:
        result = cli("plan", "-c", project, "--detailed-exitcode")
        read = {p.name for p, mask in watch.events() if mask & IN_ACCESS}
    assert result.exit_code == 0, result.output
    assert read == set()


def test_a_changed_variable_is_checked_again(
    cli: Cli, cf_env: SandboxServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm(cli, project)  # the config's schema pass is cached for this text and these values
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "not-an-account")
    result = cli("plan", "-c", project)
    assert result.exit_code == 1
    assert "account_id" in result.output + result.stderr


def test_an_edited_adapter_is_checked_again(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    warm(cli, project)
    config = next(project.parent.glob("adapters/*/adapter_config.json"))
    data = json.loads(config.read_text())
    data["r"] = 10_000
    config.write_text(json.dumps(data))
    result = cli("plan", "-c", project)
    assert result.exit_code == 1
    assert '"r" is 10000' in result.output + result.stderr
