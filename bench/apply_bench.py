"""Parallel apply: 200 new finetunes (two accounts, a per-account cap of 100) against a sandbox
that adds 50 ms to every request, timed against the ideal: requests x latency / parallelism.

Latency comes from the sandbox's own fault injection (or, in trees without it, a WSGI wrapper
in bench/sandbox_proc.py); the benchmark first checks that a request really takes that long.
The apply is the library call (workflow.apply) on a fresh plan; the requests are counted in
the sandbox's own log.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import Figure, SandboxProcess, env_for, say, timed
from bench.data import Entry, account, write_adapter, write_config
from reconciler.workflow import session as workflow

FINETUNES = 200
LATENCY = 0.050


def _one(tmp: Path, parallelism: int) -> tuple[float, int, float, str]:
    project = tmp / f"apply-p{parallelism}"
    entries = []
    for i in range(FINETUNES):
        write_adapter(project / "adapters" / f"a{i:03d}", 4096, sparse=False)
        entries.append(Entry(f"ft-{i:03d}", account(i % 2), f"adapters/a{i:03d}/"))
    config_path = project / "finetunes.yaml"
    write_config(config_path, entries)
    with SandboxProcess(tmp / f"apply-sandbox-p{parallelism}", latency=LATENCY) as sandbox:
        env = env_for(sandbox.base_url, account(0))
        with workflow.open_providers(config_path, env, None) as providers:
            one = timed(lambda: providers["cloudflare"].list_finetunes(account(0)))
            assert one >= LATENCY, f"latency not injected: a request took {one:.3f}s"
            planned = workflow.make_plan(config_path, env, providers)
            sandbox.take_log()
            start = time.perf_counter()
            result = workflow.apply(planned, providers, parallelism=parallelism)
            elapsed = time.perf_counter() - start
        assert not result.failed, result.failed[:3]
        requests = len(sandbox.take_log())
        by = sandbox.latency_by or "?"
    return elapsed, requests, one, by


def run(tmp: Path, quick: bool) -> list[Figure]:
    figures = []
    for parallelism in (4,) if quick else (4, 16):
        elapsed, requests, one, by = _one(tmp, parallelism)
        ideal = requests * LATENCY / parallelism
        ratio = elapsed / ideal
        say(
            f"  parallelism {parallelism}: {requests} requests in {elapsed:.2f}s, ideal "
            f"{ideal:.2f}s (one request alone: {one * 1000:.0f} ms)"
        )
        figures.append(
            Figure(
                "apply",
                f"apply {FINETUNES} finetunes, 50 ms/request, parallelism {parallelism} (s)",
                elapsed,
                "s",
                ideal,
                "requests x latency / parallelism",
                ratio,
                "<= 1.30",
                ratio <= 1.30,
                note=f"latency injected by {by}",
            )
        )
    return figures
