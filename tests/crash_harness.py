"""Kill `reconciler apply` with SIGKILL at chosen crash points, re-run it, check what survived.

For each kill point: a fresh sandbox and project; `apply` killed at that point (see
reconciler/crashpoints.py); `apply` run again to completion; then the invariants: every
finetune exists exactly once, every asset is stored once with the digest of its file, the
lockfile parses and matches the remote state, and a final plan shows no changes. For Cohere
also: each dataset is uploaded once (a dataset uploaded before a kill is reused, never sent
again), and each model trains on the dataset its lockfile entry records.

    python tests/crash_harness.py                     # every kill point of a 6-finetune apply
    python tests/crash_harness.py --every 7           # a sample
    python tests/crash_harness.py --provider cohere   # Cohere: datasets, then models
    python tests/crash_harness.py --provider versioned  # Cloudflare, versioning: content:
        a first version applied whole, then every kill point of the apply of a second one
        (create, uploads, promotion); after the re-run each version exists once, the new
        one is current with its files' digests and the first is retired
    python tests/crash_harness.py --provider fireworks  # Fireworks, served on a deployment:
        a first version applied whole, then every kill point of the apply of a second one
        (create, uploads, validate, serve, promotion, the unload and delete of the first);
        after the re-run one model per finetune, the new one, READY with its files' digests,
        DEPLOYED on the deployment, the first unloaded and deleted
    python tests/crash_harness.py --provider fireworks-new  # the same, killing the first
        apply (create, uploads, validate, serve, promotion)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "0123456789abcdef0123456789abcdef"


@dataclass
class Figures:
    tried: int = 0
    killed: int = 0
    converged: int = 0
    duplicates: int = 0
    lost_uploads: int = 0
    reuploads: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"kill points tried: {self.tried}, killed: {self.killed}, converged: {self.converged}, "
            f"duplicates: {self.duplicates}, lost uploads: {self.lost_uploads}, "
            f"identical re-uploads: {self.reuploads}"
        )


def make_project(folder: Path, count: int, provider: str = "cloudflare") -> Path:
    if provider == "cohere":
        return make_cohere_project(folder, count)
    sys.path.insert(0, str(ROOT / "examples"))
    from make_adapter import make_adapter

    if provider.startswith("fireworks"):
        return make_fireworks_project(folder, count)
    lines = ["version: 1", "finetunes:"]
    if provider == "versioned":
        lines = ["version: 1", "settings: {versioning: content}", "finetunes:"]
    for i in range(count):
        make_adapter(folder / "adapters" / f"a{i}", "mistral", 4, 32, 1, f"seed{i}")
        lines += [
            f"  - name: crash-{i}",
            "    provider: cloudflare",
            '    model: "@cf/mistral/mistral-7b-instruct-v0.2-lora"',
            f"    adapter: adapters/a{i}",
        ]
    config = folder / "finetunes.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


FIREWORKS_ACCOUNT = "reconciler-sandbox"  # the account the emulator serves by default
FIREWORKS_BASE = "accounts/fireworks/models/llama-v3p1-8b-instruct"
FIREWORKS_DEPLOYMENT = f"accounts/{FIREWORKS_ACCOUNT}/deployments/prod"


def make_fireworks_project(folder: Path, count: int) -> Path:
    sys.path.insert(0, str(ROOT / "examples"))
    from make_adapter import make_adapter

    lines = ["version: 1", "finetunes:"]
    for i in range(count):
        make_adapter(folder / "adapters" / f"a{i}", "llama", 4, 32, 1, f"seed{i}")
        lines += [
            f"  - name: crash-{i}",
            "    provider: fireworks",
            f"    model: {FIREWORKS_BASE}",
            f"    adapter: adapters/a{i}",
            "    serve: {deployment: prod}",
        ]
    config = folder / "finetunes.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def make_cohere_project(folder: Path, count: int) -> Path:
    chat = (ROOT / "examples" / "cohere" / "data" / "support-chat.jsonl").read_text()
    (folder / "data").mkdir(parents=True)
    lines = ["version: 1", "providers:", "  cohere: {}", "finetunes:"]
    for i in range(count):
        extra = chat.splitlines()[i % len(chat.splitlines())]
        (folder / "data" / f"c{i}.jsonl").write_text(chat + extra + "\n")
        lines += [
            f"  - name: crash-{i}",
            "    provider: cohere",
            "    base_model: {base_type: BASE_TYPE_CHAT}",
            f"    dataset: {{path: data/c{i}.jsonl, type: chat-finetune-input}}",
            "    hyperparameters: {train_epochs: 1}",
        ]
    config = folder / "finetunes.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def next_version(config: Path, count: int) -> None:
    """A retrained adapter: one byte of every weights file's tensor data changed."""
    for i in range(count):
        path = config.parent / "adapters" / f"a{i}" / "adapter_model.safetensors"
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))


def prepare(config: Path, env: dict[str, str], count: int, provider: str) -> None:
    """What the scenario has applied before the apply that is killed."""
    if provider.startswith("fireworks"):
        made = httpx.post(
            f"{env['FIREWORKS_BASE_URL']}/v1/accounts/{FIREWORKS_ACCOUNT}/deployments",
            params={"deploymentId": "prod"},
            json={"baseModel": FIREWORKS_BASE, "enableAddons": True},
            headers={"Authorization": f"Bearer {env['FIREWORKS_API_KEY']}"},
        )
        assert made.status_code == 200, made.text
        if provider == "fireworks-new":
            return
    elif provider != "versioned":
        return
    first = run(config, env, "apply", "--auto-approve")
    assert first.returncode == 0, first.stdout + first.stderr
    next_version(config, count)


def run(config: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reconciler", *extra, "-c", str(config)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def count_points(count: int, provider: str = "cloudflare") -> int:
    from reconciler.sandbox.server import SandboxServer

    with tempfile.TemporaryDirectory() as tmp:
        config = make_project(Path(tmp) / "p", count, provider)
        tally = Path(tmp) / "tally"
        with SandboxServer(Path(tmp) / "remote", clock_speed=SPEED) as sandbox:
            prepare(config, _env(sandbox), count, provider)
            env = _env(sandbox) | {"RECONCILER_CRASH_TALLY": str(tally)}
            done = run(config, env, "apply", "--auto-approve", "--parallelism", "1")
            assert done.returncode == 0, done.stdout + done.stderr
        return int(tally.read_text())


SPEED = 300  # the sandbox's clock: Cohere's validation and training take a fraction of a second


def _env(sandbox: Any) -> dict[str, str]:
    from reconciler.sandbox import DEFAULT_TOKEN

    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_CRASH")}
    return env | {
        "CLOUDFLARE_API_TOKEN": DEFAULT_TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "CLOUDFLARE_API_BASE_URL": sandbox.cloudflare_base_url,
        "CO_API_KEY": DEFAULT_TOKEN,
        "CO_API_URL": sandbox.url,
        "FIREWORKS_API_KEY": DEFAULT_TOKEN,
        "FIREWORKS_BASE_URL": sandbox.url + "/fireworks",
        "FIREWORKS_ACCOUNT_ID": FIREWORKS_ACCOUNT,
        "RECONCILER_POLL_INTERVAL": "0.02",
        "NO_COLOR": "1",
    }


def try_point(point: int, count: int, figures: Figures, provider: str = "cloudflare") -> None:
    from reconciler.sandbox.server import SandboxServer

    figures.tried += 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "p"
        config = make_project(folder, count, provider)
        with SandboxServer(Path(tmp) / "remote", clock_speed=SPEED) as sandbox:
            env = _env(sandbox)
            prepare(config, env, count, provider)
            before = len(sandbox.request_log)
            killed = run(
                config,
                env | {"RECONCILER_CRASH_AFTER": str(point)},
                "apply",
                "--auto-approve",
                "--parallelism",
                "1",
            )
            if killed.returncode == -9:
                figures.killed += 1
            finish = run(config, env, "apply", "--auto-approve")
            final = run(config, env, "plan", "--detailed-exitcode")
            check = {
                "cohere": _check_cohere,
                "versioned": _check_versioned,
                "fireworks": _check_fireworks,
                "fireworks-new": _check_fireworks,
            }.get(provider, _check)
            problems = check(config, sandbox, count, figures)
            if finish.returncode != 0:
                problems.append(
                    f"re-run apply exited {finish.returncode}: {finish.stderr.strip()[-300:]}"
                )
            if final.returncode != 0:
                problems.append(f"final plan exited {final.returncode}: {final.stdout[-300:]}")
            if provider == "cohere":
                datasets = [c for c in sandbox.request_log if c == ("POST", "/v1/datasets")]
                figures.reuploads += max(0, len(datasets) - count)
            elif provider.startswith("fireworks"):  # PUTs to signed URLs: two per finetune
                uploads = [
                    c
                    for c in sandbox.request_log[before:]
                    if c[0] == "PUT" and c[1].startswith("/fireworks/_storage/")
                ]
                figures.reuploads += max(0, len(uploads) - 2 * count)
            else:
                uploads = [
                    c for c in sandbox.request_log[before:] if c[1].endswith("/finetune-assets")
                ]
                figures.reuploads += max(0, len(uploads) - 2 * count)
    if problems:
        figures.failures.append(f"kill point {point}: " + "; ".join(problems))
    else:
        figures.converged += 1


def _check(config: Path, sandbox: object, count: int, figures: Figures) -> list[str]:
    problems: list[str] = []
    store = sandbox.store  # type: ignore[attr-defined]
    remote = store.list_finetunes(ACCOUNT)
    names = [f.name for f in remote]
    for i in range(count):
        n = names.count(f"crash-{i}")
        if n != 1:
            figures.duplicates += max(0, n - 1)
            problems.append(f"crash-{i} exists {n} times")
    try:
        lock = json.loads(config.with_suffix(".lock").read_text())
    except (OSError, ValueError) as exc:
        return [*problems, f"lockfile unreadable: {exc}"]
    by_name = {f.name: f for f in remote}
    for i in range(count):
        name = f"crash-{i}"
        entry = lock["finetunes"].get(name)
        if entry is None or name not in by_name or entry["id"] != by_name[name].id:
            problems.append(f"{name}: lock and remote disagree")
            continue
        stored = {a.file_name: a.sha256 for a in store.list_assets(entry["id"])}
        for file in ("adapter_config.json", "adapter_model.safetensors"):
            local = hashlib.sha256(
                (config.parent / "adapters" / f"a{i}" / file).read_bytes()
            ).hexdigest()
            if stored.get(file, "").removeprefix("sha256:") != local:
                figures.lost_uploads += 1
                problems.append(f"{name}/{file} not stored with the file's digest")
            if entry["assets"].get(file, {}).get("sha256") != f"sha256:{local}":
                problems.append(f"{name}/{file} not recorded in the lock")
    if lock.get("pending"):
        problems.append(f"journal not settled: {lock['pending']}")
    return problems


def _check_versioned(config: Path, sandbox: Any, count: int, figures: Figures) -> list[str]:
    """After the second version's apply was killed and re-run: each version exists once, the
    second is current with its files' digests stored, the first is retired, nothing pending."""
    problems: list[str] = []
    store = sandbox.store
    remote = store.list_finetunes(ACCOUNT)
    names = [f.name for f in remote]
    try:
        lock = json.loads(config.with_suffix(".lock").read_text())
    except (OSError, ValueError) as exc:
        return [f"lockfile unreadable: {exc}"]
    for i in range(count):
        name = f"crash-{i}"
        versions = [n for n in names if n.startswith(f"{name}-")]
        if len(versions) != len(set(versions)):
            figures.duplicates += len(versions) - len(set(versions))
            problems.append(f"{name}: a version exists twice ({sorted(versions)})")
        entry = lock["finetunes"].get(name)
        if entry is None:
            problems.append(f"{name}: not in the lock")
            continue
        current = next((f for f in remote if f.id == entry["id"]), None)
        if current is None or current.name != entry.get("remote_name"):
            problems.append(f"{name}: the lock's current version is not the remote one")
            continue
        stored = {a.file_name: a.sha256 for a in store.list_assets(entry["id"])}
        for file in ("adapter_config.json", "adapter_model.safetensors"):
            local = hashlib.sha256(
                (config.parent / "adapters" / f"a{i}" / file).read_bytes()
            ).hexdigest()
            if stored.get(file, "").removeprefix("sha256:") != local:
                figures.lost_uploads += 1
                problems.append(f"{name}/{file}: the current version lacks the file's digest")
        older = lock.get("versions", {}).get(name, {})
        states = sorted(v["state"] for v in older.values())
        if states != ["retired"]:
            problems.append(f"{name}: earlier versions {states}, expected one retired")
        if len(set(versions)) != 2:
            problems.append(f"{name}: {len(set(versions))} versions in the account, expected 2")
    if lock.get("pending"):
        problems.append(f"journal not settled: {lock['pending']}")
    return problems


def _check_fireworks(config: Path, sandbox: Any, count: int, figures: Figures) -> list[str]:
    """After the killed apply was re-run: one model per finetune, the lock's current one,
    READY and finished, holding its files' digests, DEPLOYED on the deployment and nothing
    else loaded (a superseded version unloaded and deleted); nothing pending."""
    problems: list[str] = []
    api = _FireworksReader(sandbox.url + "/fireworks")
    models = api.get("models")["models"]
    copies = api.get("deployedModels")["deployedModels"]
    try:
        lock = json.loads(config.with_suffix(".lock").read_text())
    except (OSError, ValueError) as exc:
        return [f"lockfile unreadable: {exc}"]
    for i in range(count):
        name = f"crash-{i}"
        # a first model bears the bare name, a later one (or any, versioned) NAME-<8 hex>
        mine = [m for m in models if _named(m["name"].rsplit("/", 1)[-1], name)]
        if len(mine) != 1:
            figures.duplicates += max(0, len(mine) - 1)
            problems.append(f"{name}: {len(mine)} models ({[m['name'] for m in mine]})")
        entry = lock["finetunes"].get(name)
        if entry is None:
            problems.append(f"{name}: not in the lock")
            continue
        model_id = entry["id"]
        model = next((m for m in mine if m["name"].endswith(f"/{model_id}")), None)
        if model is None or model["state"] != "READY" or model["displayName"] != model_id:
            problems.append(f"{name}: the lock's current model is not there, READY and done")
            continue
        urls = api.get(f"models/{model_id}:getDownloadEndpoint")["filenameToSignedUrls"]
        for file in ("adapter_config.json", "adapter_model.safetensors"):
            local = (config.parent / "adapters" / f"a{i}" / file).read_bytes()
            stored = httpx.get(urls[file]).content if file in urls else b""
            if hashlib.sha256(stored).digest() != hashlib.sha256(local).digest():
                figures.lost_uploads += 1
                problems.append(f"{name}/{file}: the current model lacks the file's bytes")
        served = [(c["model"], c.get("deployment"), c["state"]) for c in copies]
        want = (model["name"], FIREWORKS_DEPLOYMENT, "DEPLOYED")
        if [c for c in served if name in c[0]] != [want]:
            problems.append(f"{name}: loaded {served}, expected only {want}")
    if lock.get("pending"):
        problems.append(f"journal not settled: {lock['pending']}")
    return problems


def _named(model_id: str, name: str) -> bool:
    version = model_id.removeprefix(f"{name}-")
    hexes = len(version) == 8 and all(c in "0123456789abcdef" for c in version)
    return model_id == name or (model_id.startswith(f"{name}-") and hexes)


class _FireworksReader:
    def __init__(self, base_url: str) -> None:
        from reconciler.sandbox import DEFAULT_TOKEN

        self.base = f"{base_url}/v1/accounts/{FIREWORKS_ACCOUNT}"
        self.headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}

    def get(self, path: str) -> Any:
        answer = httpx.get(f"{self.base}/{path}", headers=self.headers, params={"pageSize": 200})
        answer.raise_for_status()
        return answer.json()


def _check_cohere(config: Path, sandbox: Any, count: int, figures: Figures) -> list[str]:
    problems: list[str] = []
    store = sandbox.cohere_store
    listed = store.list_models()
    datasets = store.list_datasets()
    if len(datasets) != count:
        problems.append(f"{len(datasets)} datasets stored for {count} models")
    try:
        lock = json.loads(config.with_suffix(".lock").read_text())
    except (OSError, ValueError) as exc:
        return [*problems, f"lockfile unreadable: {exc}"]
    for i in range(count):
        name = f"crash-{i}"
        models = [m for m in listed if m.name == name]
        if len(models) != 1:
            figures.duplicates += max(0, len(models) - 1)
            problems.append(f"{name} exists {len(models)} times")
            continue
        (model,) = models
        entry = lock["finetunes"].get(name)
        if entry is None or entry["id"] != model.id:
            problems.append(f"{name}: lock and remote disagree")
            continue
        recorded = entry["assets"].get("dataset", {})
        local = hashlib.sha256((config.parent / "data" / f"c{i}.jsonl").read_bytes()).hexdigest()
        if recorded.get("sha256") != f"sha256:{local}":
            figures.lost_uploads += 1
            problems.append(f"{name}: dataset not recorded with the file's digest")
        if recorded.get("id") != model.settings.get("dataset_id"):
            problems.append(
                f"{name}: trains on {model.settings.get('dataset_id')}, the lock records "
                f"{recorded.get('id')}"
            )
    if lock.get("pending"):
        problems.append(f"journal not settled: {lock['pending']}")
    return problems


def harness(count: int, every: int, provider: str = "cloudflare") -> Figures:
    total = count_points(count, provider)
    figures = Figures()
    for point in range(1, total + 1, every):
        try_point(point, count, figures, provider)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetunes", type=int, default=6)
    parser.add_argument("--every", type=int, default=1, help="try every Nth kill point")
    parser.add_argument(
        "--provider",
        choices=("cloudflare", "cohere", "versioned", "fireworks", "fireworks-new"),
        default="cloudflare",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    figures = harness(args.finetunes, args.every, args.provider)
    print(figures.line())
    for failure in figures.failures:
        print("FAILED", failure)
    sys.exit(1 if figures.failures else 0)


if __name__ == "__main__":
    main()
