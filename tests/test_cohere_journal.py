"""Cohere, crash-safe and honest: a dataset is uploaded once however an apply is cut short,
a dataset validation that ends any way but `validated` ends the wait as a failure, and
`apply --wait` stops on a model that will not finish training by itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CANARY_TOKEN, ROOT, Cli, serving

from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.server import SandboxServer

EXAMPLE = ROOT / "examples" / "cohere"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(
        EXAMPLE, tmp_path / "project", ignore=shutil.ignore_patterns(".reconciler", "*.lock")
    )
    return tmp_path / "project" / "finetunes.yaml"


def use(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("CO_API_KEY", CANARY_TOKEN)
    monkeypatch.setenv("CO_API_URL", url)
    monkeypatch.setenv("RECONCILER_POLL_INTERVAL", "0.02")
    monkeypatch.setenv("RECONCILER_HTTP_BACKOFF", "0")


@pytest.fixture
def cohere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "remote", tokens=(CANARY_TOKEN,), clock_speed=300) as server:
        use(monkeypatch, server.url)
        yield server


def dataset_posts(server: SandboxServer) -> int:
    return len([c for c in server.request_log if c == ("POST", "/v1/datasets")])


def test_a_dataset_whose_answer_was_lost_is_found_not_uploaded_again(
    cli: Cli, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every dataset upload is stored, then its connection dropped without an answer."""
    spec = FaultSpec.parse("route=POST /v1/datasets; drop")
    with SandboxServer(
        tmp_path / "remote", tokens=(CANARY_TOKEN,), clock_speed=300, faults=spec
    ) as server:
        use(monkeypatch, server.url)
        result = cli("apply", "-c", config, "--auto-approve")
        assert result.exit_code == 0, result.output
        assert dataset_posts(server) == 2
        assert len(server.cohere_store.list_datasets()) == 2
        lock = json.loads(config.with_suffix(".lock").read_text())
        for model in server.cohere_store.list_models():
            entry = lock["finetunes"][model.name]
            assert entry["assets"]["dataset"]["id"] == model.settings["dataset_id"]


def apply_killed_at(config: Path, server: SandboxServer, point: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_CRASH")}
    env |= {"RECONCILER_CRASH_AFTER": str(point), "CO_API_URL": server.url}
    command = [sys.executable, "-m", "reconciler", "apply", "-c", str(config), "--auto-approve"]
    command += ["--target", "support-chat", "--parallelism", "1"]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr


# The crash points of one Cohere create: 1 the upload's journal write, 2 upload.before,
# 3 upload.after (the dataset is made, its id not yet journaled), 4 the journal write that
# records it, 5 upload.locked (journaled), 6 create.before, 7 create.after (the model is made).
@pytest.mark.parametrize(
    ("point", "plan_says"),
    [
        (3, "not in the account yet"),
        (5, "reusing what an interrupted apply uploaded for it (dataset "),
        (7, "an interrupted apply created it"),
    ],
    ids=["upload.after", "upload.locked", "create.after"],
)
def test_an_apply_killed_after_the_dataset_upload_reuses_the_dataset(
    cli: Cli, cohere: SandboxServer, config: Path, point: int, plan_says: str
) -> None:
    apply_killed_at(config, cohere, point)
    assert dataset_posts(cohere) == 1
    plan = cli("plan", "-c", config, "--target", "support-chat")
    assert plan_says in plan.stdout, plan.stdout
    applied = cli("apply", "-c", config, "--auto-approve", "--target", "support-chat")
    assert applied.exit_code == 0, applied.output
    assert dataset_posts(cohere) == 1  # reused, never sent again
    (model,) = [m for m in cohere.cohere_store.list_models() if m.name == "support-chat"]
    lock = json.loads(config.with_suffix(".lock").read_text())
    assert (
        lock["finetunes"]["support-chat"]["assets"]["dataset"]["id"]
        == (model.settings["dataset_id"])
    )
    assert "pending" not in lock
    assert (
        cli("plan", "-c", config, "--target", "support-chat", "--detailed-exitcode").exit_code == 0
    )


Rewrite = Callable[[str, str, Any, int], Any]


def proxy_handler(upstream: str, rewrite: Rewrite) -> type[BaseHTTPRequestHandler]:
    """Forwards every request to the sandbox; `rewrite(method, path, body, n)` may change the
    JSON of the n-th answer to that method and path (a status the sandbox never gives)."""
    seen: dict[tuple[str, str], int] = {}

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("authorization", "content-type")
            }
            answer = httpx.request(
                self.command, upstream + self.path, headers=headers, content=body, timeout=30
            )
            content = answer.content
            path = self.path.split("?", 1)[0]
            key = (self.command, path)
            seen[key] = seen.get(key, 0) + 1
            if answer.headers.get("content-type", "").startswith("application/json"):
                data = answer.json()
                changed = rewrite(self.command, path, data, seen[key])
                content = json.dumps(changed).encode()
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PATCH = do_DELETE = _forward

    return Proxy


@pytest.mark.parametrize("status", ["unknown", "skipped", "cancelled"])
def test_a_dataset_validation_that_ends_unvalidated_fails_at_once(
    cli: Cli, cohere: SandboxServer, config: Path, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    def rewrite(method: str, path: str, body: Any, n: int) -> Any:
        if method == "GET" and path.startswith("/v1/datasets/") and n <= 40:
            body["dataset"]["validation_status"] = status
            if status == "cancelled":
                body["dataset"]["validation_error"] = "cancelled by an operator"
        return body

    with serving(proxy_handler(cohere.url, rewrite)) as url:
        use(monkeypatch, url)
        result = cli("apply", "-c", config, "--auto-approve", "--target", "support-chat")
    assert result.exit_code == 1, result.output
    assert f"its validation ended as '{status}', not validated" in result.stdout
    if status == "cancelled":
        assert "(cancelled by an operator)" in result.stdout
    reads = [c for c in cohere.request_log if c[0] == "GET" and c[1].startswith("/v1/datasets/")]
    assert len(reads) == 1  # no polling on a status that will not change
    assert cohere.cohere_store.list_models() == []  # nothing trained on it
    assert "pending" not in json.loads(config.with_suffix(".lock").read_text())


@pytest.mark.parametrize(
    ("status", "said"),
    [
        ("STATUS_PAUSED", "training is paused; it will not finish until it is resumed"),
        ("STATUS_TEMPORARILY_OFFLINE", "the model is temporarily offline at Cohere"),
        ("STATUS_DELETED", "it is gone from the account"),
    ],
)
def test_apply_wait_stops_on_training_that_will_not_finish(
    cli: Cli,
    cohere: SandboxServer,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    said: str,
) -> None:
    def rewrite(method: str, path: str, body: Any, n: int) -> Any:
        if method == "GET" and path.startswith("/v1/finetuning/finetuned-models/") and n <= 40:
            body["finetuned_model"]["status"] = status
        return body

    with serving(proxy_handler(cohere.url, rewrite)) as url:
        use(monkeypatch, url)
        result = cli("apply", "-c", config, "--auto-approve", "--target", "support-chat", "--wait")
    assert result.exit_code == 1, result.output
    assert "Training finished: 0 ready, 1 not." in result.stdout
    assert f"support-chat: {said}" in result.stderr
    reads = [c for c in cohere.request_log if c[0] == "GET" and "/finetuned-models/" in c[1]]
    assert len(reads) <= 2  # it stopped at once instead of polling until the timeout


RETIRED = "Cohere retired fine-tuning on 2025-09-15"


def test_a_plan_against_cohere_itself_says_once_that_fine_tuning_is_retired(
    cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a name that never resolves stands in for api.cohere.com: no request reaches anything
    use(monkeypatch, "https://api.cohere.invalid")
    monkeypatch.setenv("RECONCILER_HTTP_ATTEMPTS", "1")
    for fmt in ("text", "json"):
        result = cli("plan", "-c", config, "--format", fmt)
        assert result.exit_code == 1
        lines = [line for line in result.stderr.splitlines() if RETIRED in line]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("Warning: ") and "https://api.cohere.invalid" in lines[0]
        assert "--sandbox" in lines[0]
        assert RETIRED not in result.stdout  # the JSON on stdout stays JSON


def test_the_sandbox_is_not_warned_about(
    cli: Cli, cohere: SandboxServer, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert RETIRED not in cli("plan", "-c", config).stderr  # CO_API_URL on 127.0.0.1
    monkeypatch.delenv("CO_API_URL")
    monkeypatch.delenv("CO_API_KEY")
    embedded = cli("plan", "-c", config, "--sandbox")
    assert embedded.exit_code == 0, embedded.output
    assert RETIRED not in embedded.stderr


def test_apply_wait_that_times_out_says_so(cli: Cli, cohere: SandboxServer, config: Path) -> None:
    result = cli(
        "apply",
        "-c",
        config,
        "--auto-approve",
        "--target",
        "support-chat",
        "--wait",
        "--wait-timeout",
        "0",
    )
    assert result.exit_code == 1, result.output
    assert "Stopped waiting after 0s (--wait-timeout): 0 ready, 1 still training, 0 not." in (
        result.stdout
    )
    assert "support-chat: still STATUS_" in result.stderr
    assert "Training finished" not in result.stdout


def test_a_saved_plan_prunes_only_as_it_was_made(
    cli: Cli, cohere: SandboxServer, config: Path, tmp_path: Path
) -> None:
    # --wait: training finished before the plans are made, so the remote state they are made
    # from does not move under them while the test runs (on a loaded machine it did, and the
    # saved plans were rightly refused as stale)
    assert cli("apply", "-c", config, "--auto-approve", "--wait").exit_code == 0
    text = config.read_text()
    config.write_text(
        text[: text.index("  - name: support-chat")] + text[text.index("  - name: legal-rerank") :]
    )
    pruned, kept = tmp_path / "pruned.plan", tmp_path / "kept.plan"
    assert cli("plan", "-c", config, "--prune", "-o", pruned).exit_code == 0
    assert cli("plan", "-c", config, "-o", kept).exit_code == 0
    deletes = len([c for c in cohere.request_log if c[0] == "DELETE"])

    without = cli("apply", pruned, "-c", config)
    assert without.exit_code == 1
    assert "if the plan was made with --prune, apply it with --prune" in without.stderr
    wrongly = cli("apply", kept, "-c", config, "--prune")
    assert wrongly.exit_code == 1
    assert "the plan was made without --prune: apply it without --prune" in wrongly.stderr
    assert len([c for c in cohere.request_log if c[0] == "DELETE"]) == deletes

    done = cli("apply", pruned, "-c", config, "--prune")
    assert done.exit_code == 0, done.output
    assert "support-chat: delete: deleted" in done.stdout
