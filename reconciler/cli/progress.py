"""What a person sees while apply works: live progress on a terminal, one line per event in a log.

The library reports events (apply.Events: a step started, bytes sent, may I go on?) and each
step's Outcome; this module draws them. On a terminal each running step is a live line, an
upload with its bytes, rate and time left, several at once when apply runs in parallel (rich
draws them: it is imported only then, so `--help` never pays for it). Off a terminal (a CI
log) an upload says `uploading ...` when it starts and its result when it ends: nothing that
repeats.

Ctrl-C during an apply: the first one lets the steps in flight finish (each is journaled, and
a half-sent upload would only be sent again), says at once what it is waiting for, and starts
no new step; a second one stops at once. The journal makes that safe too: the next plan
resolves whatever was cut off.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

import click

from reconciler.apply.runner import Outcome
from reconciler.base.units import human_duration, human_rate, human_size
from reconciler.base.untrusted import visible
from reconciler.render.text import render_outcome

EXIT_INTERRUPTED = 130
T = TypeVar("T")
log = logging.getLogger("reconciler.apply")
# an upload that took at least this long says how long it took; one this big, how fast too
TIMED = 1.0
RATED = 1 << 20


def terminal(stream: Any) -> bool:
    """Whether live drawing suits `stream`: a terminal that understands cursor movement."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM", "") != "dumb"


@dataclass
class _Running:
    name: str
    step: str
    size: int | None
    began: float
    done: int = 0
    task: Any = None  # rich's TaskID, when drawn live


class ApplyView:
    """apply.Events and the Report of one apply, drawn on stdout."""

    def __init__(self, *, live: bool, color: bool) -> None:
        self.live = live
        self.color = color
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], _Running] = {}
        self._stop = threading.Event()
        self._progress: Any = None
        self._width = 0  # the longest finetune name drawn so far: the step names line up

    # -- the display ------------------------------------------------------------------------

    def __enter__(self) -> ApplyView:
        if self.live:
            self._progress = _live_progress(self.color)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def say(self, line: str) -> None:
        """A finished line: above the live bars on a terminal, plainly elsewhere."""
        if self._progress is not None:
            from rich.text import Text

            self._progress.console.print(Text.from_ansi(line), soft_wrap=True)
        else:
            click.echo(line, color=self.color)

    # -- apply.Events -----------------------------------------------------------------------

    def started(self, name: str, step: str, size: int | None) -> None:
        running = _Running(name, step, size, time.monotonic())
        upload = step.startswith("upload")
        with self._lock:
            self._running[(name, step)] = running
            if self._progress is not None:
                if len(visible(name)) > self._width:
                    self._width = len(visible(name))
                    for other in self._running.values():
                        if other.task is not None:
                            self._progress.update(other.task, description=self._label(other))
                running.task = self._progress.add_task(
                    self._label(running), total=size if upload else None, moved=running.began
                )
        if self._progress is None:
            if upload:
                what = step.removeprefix("upload ")
                shown = f" ({human_size(size)})" if size is not None else ""
                self.say(f"  ... {visible(name)}: uploading {visible(what)}{shown}...")
            else:
                log.info("%s: %s...", name, step)

    def _label(self, r: _Running) -> str:
        return f"{visible(r.name).ljust(self._width)}  {visible(r.step)}"

    def sent(self, name: str, step: str, done: int, total: int) -> None:
        with self._lock:
            running = self._running.get((name, step))
            if running is None:
                return
            moved = done != running.done
            running.done = done
            if self._progress is not None and running.task is not None:
                extra = {"moved": time.monotonic()} if moved else {}
                self._progress.update(running.task, completed=done, total=total, **extra)

    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- apply.Report -----------------------------------------------------------------------

    def outcome(self, o: Outcome) -> None:
        with self._lock:
            running = self._running.pop((o.name, o.step), None)
            if self._progress is not None and running is not None and running.task is not None:
                self._progress.remove_task(running.task)
        took = ""
        if running is not None and o.ok and o.step.startswith("upload"):
            elapsed = time.monotonic() - running.began
            if elapsed >= TIMED:
                took = f" in {human_duration(elapsed)}"
                if running.size and running.size >= RATED:
                    took += f", {human_rate(running.size / elapsed)}"
        self.say(render_outcome(o, self.color, took))

    # -- Ctrl-C -----------------------------------------------------------------------------

    def run(self, work: Callable[[], T]) -> T:
        """`work()` (the apply) in a thread of its own, the main thread waiting in short naps:
        a signal is handled only by the main thread, and only when it wakes, so a main thread
        blocked on the apply's result would hold a Ctrl-C until the step in flight ended.
        The first Ctrl-C stops new steps and says what is being finished; the second ends the
        process at once. Off the main thread (signals cannot be caught there) it just runs."""
        if threading.current_thread() is not threading.main_thread():
            return work()
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = work()
            except BaseException as exc:  # handed over to the main thread below
                box["error"] = exc

        thread = threading.Thread(target=target, name="apply", daemon=True)
        before = signal.signal(signal.SIGINT, self._interrupted)
        try:
            thread.start()
            while thread.is_alive():
                thread.join(0.1)
        finally:
            signal.signal(signal.SIGINT, before)
        if "error" in box:
            raise box["error"]
        result: T = box["result"]
        return result

    def _interrupted(self, signum: int, frame: FrameType | None) -> None:
        if self._stop.is_set():
            self._abort()
        self._stop.set()
        with self._lock:
            running = [_describe(r) for r in self._running.values()]
        if running:
            what = f"finishing what is in flight ({'; '.join(running)})"
        else:
            what = "stopping before the next step"
        head = "Interrupted:"
        if self.color:
            head = click.style(head, fg="yellow", bold=True)
        self.say(
            f"{head} {what}; no new step will start. Press Ctrl-C again to stop at once (the "
            "next plan picks up what is cut off)."
        )

    def _abort(self) -> None:
        with self._lock:
            running = [_describe(r) for r in self._running.values()]
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        cut = f" cut off: {'; '.join(running)}." if running else ""
        click.echo(
            f"\nStopped at once;{cut} The lockfile's journal records what was in flight: run "
            "plan or apply again to pick it up.",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # not an exception: the pool's worker threads would be waited for on the way out,
        # which is what the first Ctrl-C already does
        os._exit(EXIT_INTERRUPTED)


def _describe(r: _Running) -> str:
    text = f"{visible(r.name)}: {visible(r.step)}"
    if r.size:
        text += f", {human_size(r.done)} of {human_size(r.size)}"
    return text


@contextmanager
def status(
    message: str,
    live: bool,
    delay: float = 0.4,
    detail: Callable[[], str | None] | None = None,
) -> Iterator[None]:
    """A spinner on stderr while something long runs (a cold plan hashing gigabytes), shown
    only on a terminal and only once it has taken `delay` seconds, so a quick one never
    flickers. `detail`, read a few times a second, adds how far it has come."""
    if not live:
        yield
        return
    lock = threading.Lock()
    shown: list[Any] = []
    done = threading.Event()

    def text() -> str:
        more = detail() if detail is not None else None
        return f"{message} {more}" if more else message

    def show() -> None:
        from rich.console import Console

        with lock:
            if done.is_set():
                return
            spinner = Console(file=sys.stderr).status(text())
            spinner.start()
            shown.append(spinner)
        while detail is not None and not done.wait(0.25):
            with lock:
                if not done.is_set():
                    spinner.update(text())

    timer = threading.Timer(delay, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            done.set()
            for spinner in shown:
                spinner.stop()


def hashing_detail() -> Callable[[], str | None]:
    """What the hashing under way has done, as `hashing 1.2 GiB of 2.0 GiB, 610 MB/s, 1 s
    left`; None while nothing is being hashed."""
    from reconciler.adapters.assets import HASHING

    began: list[tuple[float, int]] = []

    def detail() -> str | None:
        done, total = HASHING.snapshot()
        if not total:
            return None
        now = time.monotonic()
        if not began:
            began.append((now, done))
        start, first = began[0]
        text = f"(hashing {human_size(done)} of {human_size(total)}"
        if now - start >= 1 and done > first:
            rate = (done - first) / (now - start)
            text += f", {rate / 1e6:.0f} MB/s, {max(0, total - done) / rate:.0f} s left"
        return text + ")"

    return detail


def _live_progress(color: bool) -> Any:
    """rich's Progress with our columns: what, a bar, bytes, rate, time left."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
    from rich.text import Text

    class Bytes(ProgressColumn):
        def render(self, task: Task) -> Text:
            if task.total is None:
                return Text(human_duration(task.elapsed or 0.0), style="progress.elapsed")
            done, total = human_size(task.completed), human_size(task.total)
            return Text(f"{done} / {total}", style="progress.download")

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            if task.total is None or not task.speed or _stalled(task) is not None:
                return Text("")
            return Text(human_rate(task.speed), style="progress.data.speed")

    class Left(ProgressColumn):
        def render(self, task: Task) -> Text:
            left = task.time_remaining
            if task.total is None:
                return Text("")
            if task.completed >= task.total:  # all sent: the API has yet to answer
                return Text("waiting for the answer", style="progress.remaining")
            quiet = _stalled(task)
            if quiet is not None:  # rich would go on showing the last rate and time left
                return Text(f"stalled for {human_duration(quiet)}", style="progress.remaining")
            if left is None:
                return Text("")
            return Text(f"{human_duration(left)} left", style="progress.remaining")

    console = Console(file=sys.stdout, force_terminal=True, no_color=not color, highlight=False)
    return Progress(
        TextColumn("  {task.description}", markup=False),
        BarColumn(bar_width=24),
        Bytes(),
        Rate(),
        Left(),
        console=console,
        transient=True,
        speed_estimate_period=5.0,
    )


STALLED_AFTER = 2.0  # seconds without a byte sent before a bar says it is stalled


def _stalled(task: Any) -> float | None:
    """How long an unfinished upload has sent nothing, once that is STALLED_AFTER or more;
    None while bytes move (the rate and time left then say how fast)."""
    moved = task.fields.get("moved")
    if task.total is None or task.completed >= task.total or not isinstance(moved, float):
        return None
    quiet = time.monotonic() - moved
    return quiet if quiet >= STALLED_AFTER else None
