"""Fireworks uploads: a 256 MB adapter file PUT to the sandbox's signed URL by reconciler's
storage client (providers/fireworks/storage.py), in a process of its own, against `curl -T`
sending the same file to the same kind of URL with the same headers.

Each upload goes to a model of its own (a signed URL takes one upload). Throughput is bytes
over the time of the request alone; peak memory is the uploading process's VmHWM over its
resident set just before the PUT.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

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
from bench.data import write_safetensors
from reconciler.sandbox import DEFAULT_TOKEN

CURL = "/usr/bin/curl"
ACCOUNT = "reconciler-sandbox"
NAME = "adapter_model.safetensors"


def _signed_url(api: httpx.Client, model_id: str, size: int) -> str:
    model = {
        "kind": "HF_PEFT_ADDON",
        "peftDetails": {
            "baseModel": "accounts/fireworks/models/llama-v3p1-8b-instruct",
            "r": 8,
            "targetModules": ["q_proj", "v_proj"],
        },
    }
    made = api.post(f"/v1/accounts/{ACCOUNT}/models", json={"modelId": model_id, "model": model})
    made.raise_for_status()
    answer = api.post(
        f"/v1/accounts/{ACCOUNT}/models/{model_id}:getUploadEndpoint",
        json={"filenameToSize": {NAME: str(size)}},
    )
    answer.raise_for_status()
    return str(answer.json()["filenameToSignedUrls"][NAME])


def run(tmp: Path, quick: bool) -> list[Figure]:
    size = (64 if quick else 256) * 1 << 20
    runs = 3 if quick else 5
    source = tmp / NAME
    write_safetensors(source, size, sparse=False)
    expected = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    drop_into_page_cache([source])
    say(f"  one file of {size >> 20} MiB, {runs} uploads each way")
    peaks: list[float] = []
    with (
        _storage_folder(tmp, (2 * runs + 1) * size) as folder,
        SandboxProcess(folder) as sandbox,
    ):
        root = sandbox.base_url.removesuffix("/client/v4") + "/fireworks"
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        counter = itertools.count()
        with httpx.Client(base_url=root, headers=headers, timeout=60) as api:

            def ours() -> float:
                url = _signed_url(api, f"ours-{next(counter)}", size)
                os.sync()  # the last upload's bytes on disk first, not in this one's time
                out = subprocess.run(
                    [sys.executable, "-m", "bench.signed_child", url, str(source)],
                    cwd=ROOT, check=True, capture_output=True, text=True,
                )  # fmt: skip
                result = json.loads(out.stdout)
                assert (result["sha256"], result["size"]) == (expected, size)
                peaks.append((result["peak_kib"] - result["rss_before_kib"]) / 1024)
                return float(result["seconds"])

            def curl() -> float:
                url = _signed_url(api, f"curl-{next(counter)}", size)
                os.sync()
                out = subprocess.run(
                    [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                     "-T", str(source), "-H", "Content-Type: application/octet-stream",
                     "-H", f"X-Goog-Content-Length-Range: {size},{size}", "-H", "Expect:",
                     url],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                code, seconds = out.stdout.split()
                assert code == "200", out.stdout
                return float(seconds)

            curl_times, our_times = alternate(runs, curl, ours)
    say(f"  curl -T: {spread(curl_times)}; reconciler: {spread(our_times)}")
    middle = statistics.median(curl_times) / statistics.median(our_times)
    return upload_figures(
        "signed",
        f"PUT {size >> 20} MiB to a signed URL",
        size,
        our_times,
        ("curl -T", curl_times),
        peaks,
        (
            f"medians: {statistics.median(our_times):.2f} s against "
            f"{statistics.median(curl_times):.2f} s, ratio {middle:.2f} (the one sandbox "
            "process receiving, hashing and storing both sets the pace, and varies)",
            "",
        ),
    )


@contextmanager
def _storage_folder(tmp: Path, needed: int) -> Iterator[Path]:
    """Where the sandbox keeps the uploaded objects: in memory (/dev/shm) when it has room,
    removed after. Each PUT writes 256 MiB on the server's side; on a disk, when writeback of
    the last one stalls the next is chance, and a best-of picks whichever client ran in a
    clean window (curl's best was 0.8 s while both medians were 1.9 s). Both clients send to
    the same server; what is compared is the sending, so the server's disk is taken out."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        free = os.statvfs(shm)
        if free.f_bavail * free.f_frsize > needed + (1 << 30):
            folder = Path(tempfile.mkdtemp(prefix="reconciler-bench-", dir=shm))
            try:
                yield folder / "signed-sandbox"
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            return
    yield tmp / "signed-sandbox"
