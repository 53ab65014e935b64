"""One upload through reconciler's provider, alone in a process, so its peak memory is its own.

    python -m bench.upload_child BASE_URL TOKEN ACCOUNT FINETUNE_ID FILE

Prints JSON: seconds (and CPU seconds) for upload_asset, the digest it returned, the resident set
before the upload (the baseline: interpreter, imports, client) and the peak during it, in KiB.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from reconciler.base.model import AssetFile
from reconciler.providers.cloudflare.api import CloudflareProvider
from reconciler.providers.endpoint import Endpoint


def status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def main() -> None:
    base_url, token, account, finetune_id, file = sys.argv[1:]
    provider = CloudflareProvider(Endpoint(base_url=base_url, token=token, label="bench"))
    # One small call first: the client, its imports and its connection exist before the
    # baseline is read and the clock starts (they may be made lazily, at the first call).
    provider.list_finetunes(account)
    try:
        # Writing 5 resets the peak (VmHWM) to the current RSS, so the peak we read after is
        # the upload's own (Linux >= 4.0); if not allowed, the peak is an upper bound.
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = status()
    start, cpu = time.perf_counter(), time.process_time()
    sent = provider.upload_asset(
        account, finetune_id, AssetFile("adapter_model.safetensors", Path(file))
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = status()
    provider.close()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "sha256": sent.sha256,
                "size": sent.size,
                "rss_before_kib": before["VmRSS"],
                "peak_kib": after["VmHWM"],
                "peak_reset": reset,
            }
        )
    )


if __name__ == "__main__":
    main()
