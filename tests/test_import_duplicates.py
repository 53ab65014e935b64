"""`reconciler import NAME` when the account holds two finetunes of that name: it says which
ids, imports neither and leaves the lockfile as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import ACCOUNT, CANARY_TOKEN, Cli, serving

MODEL = "@cf/google/gemma-2b-it-lora"


def finetune(id_: str, name: str) -> dict[str, object]:
    return {"id": id_, "name": name, "model": MODEL, "description": "x", "public": False}


@pytest.fixture
def twins() -> Iterator[tuple[str, list[str]]]:
    """An API whose account lists two finetunes named faq-bot-v1 (and one other)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"{self.command} {self.path}")
            result: object = []
            if self.path.endswith("/ai/finetunes"):
                result = [
                    finetune("id-b", "faq-bot-v1"),
                    finetune("id-a", "faq-bot-v1"),
                    finetune("id-c", "support-bot-v3"),
                ]
            body = json.dumps({"success": True, "errors": [], "messages": [], "result": result})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_POST(self) -> None:  # nothing may be changed
            seen.append(f"{self.command} {self.path}")
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield f"{url}/client/v4", seen


def test_import_of_a_shared_name_names_the_ids_and_picks_none(
    cli: Cli, project: Path, twins: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = twins
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", url)
    lock = project.with_suffix(".lock")
    lock.write_text('{"format_version": 1, "finetunes": {}}\n')
    before = lock.read_bytes()
    result = cli("import", "faq-bot-v1", "-c", project)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == (
        f"Error: 2 finetunes named faq-bot-v1 in cloudflare account {ACCOUNT} (ids id-a, id-b); "
        "reconciler cannot tell which one the config means, so none was imported: remove or "
        "rename the others in the account first"
    )
    assert lock.read_bytes() == before
    assert not [s for s in seen if s.startswith("POST")]
    # the name that is unique is still imported
    assert cli("import", "support-bot-v3", "-c", project).exit_code == 0
    assert json.loads(lock.read_text())["finetunes"]["support-bot-v3"]["id"] == "id-c"
