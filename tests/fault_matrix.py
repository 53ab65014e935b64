"""The fault matrix: each fault type at a 20% rate on every route of both APIs.

For each fault, a project of two Cloudflare and two Cohere finetunes is applied against a
sandbox that misbehaves, re-running apply (as a pipeline would) until it succeeds, then
checked: every finetune exists exactly once, every asset is stored with its file's digest, the
lockfile matches the remote state, and a plan against a well-behaved sandbox shows no changes.

    python tests/fault_matrix.py          # prints one line of figures per fault
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "0123456789abcdef0123456789abcdef"
FAULTS = {
    "429": "status=429; retry_after=0",
    "500": "status=500",
    "502": "status=502",
    "503": "status=503",
    "latency": "latency=30ms",
    "reset": "reset",
    "drop": "drop",
}
MAX_RUNS = 8


@dataclass
class Row:
    fault: str
    runs: int
    injected: int
    converged: bool
    duplicates: int
    lost: int
    problems: list[str]

    def line(self) -> str:
        state = "converged" if self.converged else "DID NOT CONVERGE"
        return (
            f"{self.fault:>8}: {state} after {self.runs} apply run(s), {self.injected} faults "
            f"injected, duplicates {self.duplicates}, lost uploads {self.lost}"
        )


def make_project(folder: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "quickstart" / "adapters", folder / "adapters")
    shutil.copytree(ROOT / "examples" / "cohere" / "data", folder / "data")
    quickstart = (ROOT / "examples" / "quickstart" / "finetunes.yaml").read_text()
    cohere = (ROOT / "examples" / "cohere" / "finetunes.yaml").read_text()
    finetunes = cohere[cohere.index("finetunes:\n") + len("finetunes:\n") :]
    config = folder / "finetunes.yaml"
    config.write_text(
        quickstart.replace("providers:\n", "providers:\n  cohere: {}\n") + "\n" + finetunes
    )
    return config


def run_fault(name: str, spec_text: str, seed: int = 11) -> Row:
    from reconciler.cli.main import main
    from reconciler.sandbox import DEFAULT_TOKEN
    from reconciler.sandbox.common.fault_spec import FaultSpec
    from reconciler.sandbox.server import SandboxServer

    with tempfile.TemporaryDirectory() as tmp:
        config = make_project(Path(tmp) / "p")
        data = Path(tmp) / "remote"
        spec = FaultSpec.parse(f"seed={seed}; rate=0.2; {spec_text}")
        env = {
            "CLOUDFLARE_API_TOKEN": DEFAULT_TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "CO_API_KEY": DEFAULT_TOKEN,
            "RECONCILER_HTTP_BACKOFF": "0.01",
            "RECONCILER_POLL_INTERVAL": "0.02",
            "NO_COLOR": "1",
        }
        runner = CliRunner()
        runs, ok, injected = 0, False, 0
        with SandboxServer(data, clock_speed=3000, faults=spec) as faulty:
            env |= {"CLOUDFLARE_API_BASE_URL": faulty.cloudflare_base_url, "CO_API_URL": faulty.url}
            while runs < MAX_RUNS and not ok:
                runs += 1
                result = runner.invoke(
                    main, ["apply", "-c", str(config), "--auto-approve"], env=env
                )
                ok = result.exit_code == 0
            injected = len(faulty.fault_log)
            port = faulty.port
        # judged against the same remote, behaving
        with SandboxServer(data, clock_speed=3000, port=port) as clean:
            problems = _check(config, clean)
            final = runner.invoke(main, ["plan", "-c", str(config), "--detailed-exitcode"], env=env)
            if final.exit_code != 0:
                problems.append(f"final plan exited {final.exit_code}: {final.output[-400:]}")
        duplicates = sum(1 for p in problems if "exists" in p)
        lost = sum(1 for p in problems if "not stored" in p)
        return Row(name, runs, injected, ok, duplicates, lost, problems)


def _check(config: Path, sandbox: object) -> list[str]:
    problems: list[str] = []
    lock = json.loads(config.with_suffix(".lock").read_text())
    store = sandbox.store  # type: ignore[attr-defined]
    cloudflare = {f.name: f for f in store.list_finetunes(ACCOUNT)}
    names = [f.name for f in store.list_finetunes(ACCOUNT)]
    for name, folder in (("support-bot-v3", "support-v3"), ("faq-bot-v1", "faq-v1")):
        if names.count(name) != 1:
            problems.append(f"{name} exists {names.count(name)} times")
            continue
        entry = lock["finetunes"].get(name, {})
        if entry.get("id") != cloudflare[name].id:
            problems.append(f"{name}: lock and remote disagree")
        stored = {
            a.file_name: a.sha256.removeprefix("sha256:")
            for a in store.list_assets(cloudflare[name].id)
        }
        for file in ("adapter_config.json", "adapter_model.safetensors"):
            local = hashlib.sha256(
                (config.parent / "adapters" / folder / file).read_bytes()
            ).hexdigest()
            if stored.get(file) != local:
                problems.append(f"{name}/{file} not stored with its digest")
    import httpx

    from reconciler.sandbox import DEFAULT_TOKEN

    models = httpx.get(
        f"{sandbox.url}/v1/finetuning/finetuned-models",  # type: ignore[attr-defined]
        params={"page_size": 100},
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    ).json()["finetuned_models"]
    for name in ("support-chat", "legal-rerank"):
        found = [m for m in models if m["name"] == name]
        if len(found) != 1:
            problems.append(f"{name} exists {len(found)} times")
        elif lock["finetunes"].get(name, {}).get("id") != found[0]["id"]:
            problems.append(f"{name}: lock and remote disagree")
    if lock.get("pending"):
        problems.append(f"journal not settled: {lock['pending']}")
    return problems


def matrix() -> list[Row]:
    return [run_fault(name, spec) for name, spec in FAULTS.items()]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.pop("RECONCILER_CRASH_AFTER", None)
    rows = matrix()
    for row in rows:
        print(row.line())
        for problem in row.problems:
            print("   ", problem)
    sys.exit(0 if all(r.converged and not r.problems for r in rows) else 1)
