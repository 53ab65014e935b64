"""Uploads: a 300 MB adapter through CloudflareProvider.upload_asset, in a process of its own,
against `curl -F` sending the same file to the same sandbox endpoint.

Peak memory is the upload process's VmHWM over its resident set just before the upload.
Throughput is bytes over the time of the request alone (curl's time_total; the provider call
for ours), so neither side pays for starting its process. curl is told not to wait for
`100 Continue` (Expect:), which would otherwise cost it a second against this server.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from bench.common import (
    ROOT,
    Figure,
    SandboxProcess,
    alternate,
    drop_into_page_cache,
    say,
    spread,
    upload_figures,
)
from bench.data import MODEL, account, write_safetensors
from reconciler.base.model import DesiredFinetune
from reconciler.providers.cloudflare.api import CloudflareProvider
from reconciler.providers.endpoint import Endpoint
from reconciler.sandbox import DEFAULT_TOKEN

CURL = "/usr/bin/curl"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _prune(data_dir: Path, keep: Path) -> None:
    """Drop the sandbox's stored copies of earlier uploads: the disk stays modest."""
    for path in data_dir.rglob("*"):
        if path.is_file() and path != keep and path.stat().st_size > 1 << 20:
            path.unlink(missing_ok=True)


def run(tmp: Path, quick: bool) -> list[Figure]:
    size = (100 if quick else 300) * 1_000_000
    runs = 5
    source = tmp / "adapter_model.safetensors"
    write_safetensors(source, size, sparse=False)
    expected = _sha256(source)
    drop_into_page_cache([source])
    acct = account(0)
    data_dir = tmp / "upload-sandbox"
    say(f"  one file of {size / 1e6:.0f} MB, {runs} uploads each way")

    with SandboxProcess(data_dir) as sandbox:
        endpoint = Endpoint(base_url=sandbox.base_url, token=DEFAULT_TOKEN, label="bench")
        provider = CloudflareProvider(endpoint)
        counter = iter(range(1_000_000))

        def new_finetune() -> str:
            n = next(counter)
            desired = DesiredFinetune(
                name=f"upload-{n}",
                provider="cloudflare",
                account=acct,
                model=MODEL,
                description=None,
                public=False,
                assets=(),
            )
            return provider.create_finetune(desired).id

        peaks: list[float] = []
        baselines: list[float] = []
        cpus: list[float] = []

        def ours() -> float:
            finetune = new_finetune()
            out = subprocess.run(
                [sys.executable, "-m", "bench.upload_child", sandbox.base_url, DEFAULT_TOKEN,
                 acct, finetune, str(source)],
                cwd=ROOT, check=True, capture_output=True, text=True,
            )  # fmt: skip
            result = json.loads(out.stdout)
            assert result["sha256"] == expected and result["size"] == size
            peaks.append((result["peak_kib"] - result["rss_before_kib"]) / 1024)
            baselines.append(result["rss_before_kib"] / 1024)
            cpus.append(result["cpu_seconds"])
            _prune(data_dir, source)
            return float(result["seconds"])

        def curl() -> float:
            finetune = new_finetune()
            url = f"{sandbox.base_url}/accounts/{acct}/ai/finetunes/{finetune}/finetune-assets"
            out = subprocess.run(
                [CURL, "-sS", "-w", "\n%{time_total}",
                 "-H", f"Authorization: Bearer {DEFAULT_TOKEN}", "-H", "Expect:",
                 "-F", "file_name=adapter_model.safetensors",
                 "-F", f"file=@{source};type=application/octet-stream", url],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            body, seconds = out.stdout.rsplit("\n", 1)
            assert json.loads(body)["success"] is True, body
            _prune(data_dir, source)
            return float(seconds)

        try:
            curl_times, our_times = alternate(runs, curl, ours)
        finally:
            provider.close()
    say(f"  curl: {spread(curl_times)}; reconciler: {spread(our_times)}")
    say(f"  peak above baseline per upload: {', '.join(f'{p:.1f} MB' for p in peaks)}")
    return upload_figures(
        "upload",
        f"upload {size / 1e6:.0f} MB",
        size,
        our_times,
        ("curl -F", curl_times),
        peaks,
        (
            f"reconciler's own CPU per upload: {min(cpus):.2f}s (sha256 of what it sends "
            "included); the sandbox's multipart parser, shared by both, sets the pace",
            f"the process's resident set before the upload: {max(baselines):.0f} MB",
        ),
    )
