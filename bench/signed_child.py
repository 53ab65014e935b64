"""One PUT to a Fireworks signed URL through reconciler's storage client, alone in a process, so
its peak memory is its own.

    python -m bench.signed_child URL FILE

Prints JSON: seconds and CPU seconds of the PUT, the digest of what it sent, the resident set
before it (the baseline) and the peak during it, in KiB.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from bench.upload_child import status
from reconciler.providers.fireworks.storage import SignedStorage


def main() -> None:
    url, file = sys.argv[1:]
    path = Path(file)
    storage = SignedStorage()
    _ = storage._client  # the client and its imports exist before the baseline is read
    with contextlib.suppress(OSError):  # the peak from here on is the PUT's own
        Path("/proc/self/clear_refs").write_text("5")
    before = status()
    start, cpu = time.perf_counter(), time.process_time()
    with path.open("rb") as f:
        sent = storage.put("upload", url, f, path.stat().st_size, path.name)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = status()
    storage.close()
    result = {"seconds": seconds, "cpu_seconds": cpu, "sha256": sent.sha256, "size": sent.size}
    result |= {"rss_before_kib": before["VmRSS"], "peak_kib": after["VmHWM"]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
