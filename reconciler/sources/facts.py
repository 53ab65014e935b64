"""What was learnt about immutable content (a Hub commit, a file of a declared sha256), kept
as a small JSON file under <config dir>/.reconciler/sources/, so a warm plan reads nothing.

Like the stat cache, it only accelerates: a missing, corrupt or unwritable file is a miss.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any


class Facts:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._dirty = False
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError, RecursionError):
            data = {}
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}

    def get(self, *keys: str) -> Any:
        node: Any = self.data
        for key in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    def put(self, value: Any, *keys: str) -> None:
        with self._lock:
            node = self.data
            for key in keys[:-1]:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
            node[keys[-1]] = value
            self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            except OSError:
                return
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(self.data, f, sort_keys=True, separators=(",", ":"))
                os.replace(tmp, self.path)
                self._dirty = False
            except (OSError, TypeError, ValueError):
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
