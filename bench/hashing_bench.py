"""Hashing: digest_all against `openssl dgst -sha256` (one process per core) on the same files,
then a whole cold `reconciler plan` (a fresh process) against the same openssl run.

The page cache is filled first, so both sides measure CPU, not the disk.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.common import (
    Figure,
    SandboxProcess,
    alternate,
    drop_into_page_cache,
    env_for,
    reconciler_cmd,
    say,
    spread,
    timed,
)
from bench.data import Entry, account, write_adapter, write_config
from reconciler.adapters.assets import digest_all, usable_cores
from reconciler.base.model import AssetFile
from reconciler.project import Project
from reconciler.state.statcache import StatCache

ADAPTERS = 8


def _deal(paths: list[Path], hands: int) -> list[list[Path]]:
    """Largest first to the least-loaded hand: the split digest_all's pool ends up making."""
    groups: list[list[Path]] = [[] for _ in range(hands)]
    loads = [0] * hands
    for path in sorted(paths, key=lambda p: p.stat().st_size, reverse=True):
        i = loads.index(min(loads))
        groups[i].append(path)
        loads[i] += path.stat().st_size
    return [g for g in groups if g]


def _openssl(groups: list[list[Path]]) -> tuple[float, dict[str, str]]:
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["openssl", "dgst", "-sha256", "-r", *map(str, g)], stdout=subprocess.PIPE, text=True
        )
        for g in groups
    ]
    outs = [p.communicate()[0] for p in procs]
    elapsed = time.perf_counter() - start
    assert all(p.returncode == 0 for p in procs)
    digests = {}
    for out in outs:
        for line in out.splitlines():
            hexdigest, name = line.split(" ", 1)
            digests[name.lstrip("*")] = hexdigest
    return elapsed, digests


def run(tmp: Path, quick: bool) -> list[Figure]:
    size = (50 if quick else 250) * 1_000_000
    runs = 3 if quick else 5
    project = tmp / "hashing"
    entries = []
    for i in range(ADAPTERS):
        write_adapter(project / "adapters" / f"a{i}", size, sparse=False)
        entries.append(Entry(f"hash-{i}", account(0), f"adapters/a{i}/"))
    config = project / "finetunes.yaml"
    write_config(config, entries)
    paths = sorted(project.glob("adapters/*/*"))
    total = sum(p.stat().st_size for p in paths)
    drop_into_page_cache(paths)
    cores = usable_cores()
    groups = _deal(paths, cores)
    say(f"  {len(paths)} files, {total / 1e9:.2f} GB of random bytes, {cores} cores")

    assets = [AssetFile(p.name, p) for p in paths]
    _, reference = _openssl(groups)
    got = digest_all(assets)
    assert all(got[p].sha256 == "sha256:" + reference[str(p)] for p in paths), "digests differ"

    cache_path = tmp / "hashing-cache" / "statcache.json"

    def ours() -> float:
        cache_path.unlink(missing_ok=True)
        return timed(lambda: digest_all(assets, StatCache.open(cache_path)))

    ssl_times, our_times = alternate(runs, lambda: _openssl(groups)[0], ours)
    say(f"  openssl x{len(groups)}: {spread(ssl_times)}; digest_all: {spread(our_times)}")
    ratio = min(ssl_times) / min(our_times)
    figures = [
        Figure(
            "hashing",
            "digest_all, cold cache (GB/s)",
            total / min(our_times) / 1e9,
            "GB/s",
            total / min(ssl_times) / 1e9,
            f"openssl dgst x{len(groups)} procs",
            ratio,
            ">= 0.90",
            ratio >= 0.90,
        )
    ]

    with SandboxProcess(tmp / "hashing-sandbox") as sandbox:
        env = env_for(sandbox.base_url, account(0))
        command = [*reconciler_cmd(), "plan", "-c", str(config)]

        def plan() -> float:
            Project.at(config).statcache.unlink(missing_ok=True)  # cold, whoever passes the cache
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - start

        ssl_times2, plan_times = alternate(runs, lambda: _openssl(groups)[0], plan)
    say(f"  openssl: {spread(ssl_times2)}; reconciler plan (new process): {spread(plan_times)}")
    ratio = min(plan_times) / min(ssl_times2)
    figures.append(
        Figure(
            "hashing",
            f"cold `reconciler plan` over {total / 1e9:.1f} GB (s)",
            min(plan_times),
            "s",
            min(ssl_times2),
            "openssl run",
            ratio,
            "<= 1.50",
            ratio <= 1.50,
            note=f"start-up and the rest of the plan: {min(plan_times) - min(our_times):.3f}s "
            "over digest_all alone",
        )
    )
    return figures
