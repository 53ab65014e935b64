"""What was learnt about immutable content (a Hub commit, a file of a declared sha256), kept
as a small JSON file under the project's sources folder (Project.sources), so a warm plan
reads nothing.

Like the stat cache, it only accelerates: a missing, corrupt or unwritable file is a miss.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from reconciler.state.atomic import write_cache


class Facts:
    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path = path
        self.root = root  # the project's folder, which the file is written inside
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
            if self._dirty and write_cache(
                self.path, self.data, project_root=self.root, sort_keys=True, separators=(",", ":")
            ):
                self._dirty = False
