"""What every benchmark shares: figures with their baseline and goal, timing, a sandbox process.

The machine is shared (2 cores, other people's test runs), so every figure is the best of a few
runs, and a figure and its baseline are measured alternately, not one block after the other.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "CLOUDFLARE_API_TOKEN"


@dataclass(frozen=True)
class Figure:
    bench: str
    what: str
    value: float
    unit: str
    baseline: float | None  # same unit as value
    baseline_what: str
    ratio: float | None  # value / baseline, or baseline / value for rates: see `goal`
    goal: str  # e.g. "ratio >= 0.90"
    passed: bool
    note: str = ""

    def line(self) -> str:
        base = f"{self.baseline:.3g} {self.unit} ({self.baseline_what})" if self.baseline else "-"
        ratio = f"{self.ratio:.2f}" if self.ratio is not None else "-"
        verdict = "PASS" if self.passed else "MISS"
        text = (
            f"{verdict}  {self.bench:<8} {self.what:<44} {self.value:9.3g} {self.unit:<5} "
            f"baseline {base}  ratio {ratio}  goal {self.goal}"
        )
        return text + (f"\n      {self.note}" if self.note else "")


MEMORY_GOAL_MB = 64.0  # an upload's peak memory over its process's baseline


def upload_figures(
    bench: str,
    what: str,
    size: int,
    ours: list[float],
    theirs: tuple[str, list[float]],
    peaks: list[float],
    notes: tuple[str, str] = ("", ""),
) -> list[Figure]:
    """An upload against a baseline client to the same route: throughput (best of each, goal
    0.8x) and peak memory over the uploading process's baseline (goal < 64 MB). `theirs`: the
    baseline's name and times; `notes`: one for each figure."""
    name, times = theirs
    ratio = min(times) / min(ours)
    return [
        Figure(
            bench,
            f"{what}: throughput (MB/s)",
            size / min(ours) / 1e6,
            "MB/s",
            size / min(times) / 1e6,
            name,
            ratio,
            ">= 0.80",
            ratio >= 0.80,
            note=notes[0],
        ),
        Figure(
            bench,
            f"{what}: peak memory over baseline (MB)",
            max(peaks),
            "MB",
            None,
            "",
            None,
            f"< {MEMORY_GOAL_MB:.0f} MB",
            max(peaks) < MEMORY_GOAL_MB,
            note=notes[1],
        ),
    ]


def say(*parts: object) -> None:
    print(*parts, flush=True)


def best_of(runs: int, fn: Callable[[], float]) -> list[float]:
    return [fn() for _ in range(runs)]


def alternate(
    runs: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Run two measurements in turn, so background load hits both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        a.append(first())
        b.append(second())
    return a, b


def spread(samples: list[float]) -> str:
    return f"best {min(samples):.3f}s median {statistics.median(samples):.3f}s of {len(samples)}"


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def drop_into_page_cache(paths: list[Path]) -> None:
    """Read the files once, so a timing measures CPU, not the disk."""
    buf = bytearray(4 << 20)
    for path in paths:
        with path.open("rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def reconciler_cmd() -> list[str]:
    """The installed console script, as a user runs it; `-m reconciler` if there is none."""
    script = Path(sys.executable).parent / "reconciler"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


def env_for(base_url: str, account: str) -> dict[str, str]:
    from reconciler.sandbox import DEFAULT_TOKEN

    env = dict(os.environ)
    env.update(
        {
            TOKEN_ENV: DEFAULT_TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": account,
            "CLOUDFLARE_API_BASE_URL": base_url,
            "NO_COLOR": "1",
        }
    )
    return env


class SandboxProcess:
    """The sandbox in its own process (bench/sandbox_proc.py), so its work never shares our
    GIL or our CPU-time counters. `latency` adds that many seconds to every request."""

    def __init__(self, data_dir: Path, latency: float = 0.0) -> None:
        self.data_dir = data_dir
        self.latency = latency
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.latency_by: str | None = None

    def __enter__(self) -> SandboxProcess:
        cmd = [sys.executable, "-m", "bench.sandbox_proc", str(self.data_dir)]
        if self.latency:
            cmd += ["--latency", str(self.latency)]
        self._proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError("the sandbox process did not start")
        started = json.loads(line)
        self.base_url = started["url"]
        self.latency_by = started.get("latency_by")
        return self

    def _ask(self, command: str) -> Any:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return json.loads(self._proc.stdout.readline())

    def take_log(self) -> list[tuple[str, str]]:
        """The (method, path) of every request since the last call; the log is then cleared."""
        return [(str(m), str(p)) for m, p in self._ask("log")]

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()  # EOF: the sandbox stops cleanly
            proc.wait(timeout=15)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            proc.kill()  # by its own pid: this object started it
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def rss_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, in KiB (Linux)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


class ReadWatch:
    """inotify (Linux) on files: were any of their bytes read? The kernel reports every read,
    so nothing in reconciler needs a hook for this to be trusted."""

    IN_ACCESS = 0x1

    def __init__(self, paths: list[Path]) -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.names: dict[int, Path] = {}
        for path in paths:
            wd = libc.inotify_add_watch(self.fd, str(path).encode(), self.IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
            self.names[wd] = path

    def read_files(self) -> set[Path]:
        import struct

        seen: set[Path] = set()
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return seen
            offset = 0
            while offset < len(data):
                wd, mask, _, length = struct.unpack_from("iIII", data, offset)
                offset += 16 + length
                if mask & self.IN_ACCESS and wd in self.names:
                    seen.add(self.names[wd])

    def close(self) -> None:
        os.close(self.fd)
