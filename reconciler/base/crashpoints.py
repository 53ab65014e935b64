"""Named places where a test harness may kill the process, to prove crash safety.

With RECONCILER_CRASH_AFTER=N in the environment, the Nth crash point reached kills the
process with SIGKILL: no cleanup, no finally, as a cancelled CI job or a lost machine would.
With RECONCILER_CRASH_TALLY=FILE, the number of points reached is written there at exit, so
a harness knows how many points a run has. Unset (always, outside tests), a point costs one
dictionary lookup.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from pathlib import Path

_count = 0
_mutex = threading.Lock()
_tally_registered = False


def hit(label: str) -> None:
    global _count, _tally_registered
    target = os.environ.get("RECONCILER_CRASH_AFTER")
    tally = os.environ.get("RECONCILER_CRASH_TALLY")
    if not target and not tally:
        return
    with _mutex:
        _count += 1
        n = _count
        if tally and not _tally_registered:
            _tally_registered = True
            atexit.register(lambda: Path(tally).write_text(str(_count)))
    if target and n == int(target):
        os.kill(os.getpid(), signal.SIGKILL)
