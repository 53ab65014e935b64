"""A local adapter folder as a source: the files beside the config, read as they are.

Their digests are hashed by assets.digest_all (all cores, the stat cache); the pre-flight
checks read them here, through the same stat cache, so an unchanged file is read once.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.sources.base import Resolved, SourceFile
from reconciler.state.statcache import StatCache


class LocalSource:
    def __init__(self, folder: Path, cache: StatCache | None = None) -> None:
        self.folder = folder
        self.cache = cache
        self._stats: dict[str, os.stat_result] = {}

    # the Source protocol

    def resolve(self) -> Resolved:
        files = {}
        for path in sorted(self.folder.iterdir()):
            if path.is_file():
                files[path.name] = SourceFile(path.name, path.stat().st_size, None, str(path))
        return Resolved(label=str(self.folder), files=files)

    def header(self, name: str, length: int) -> bytes:
        with (self.folder / name).open("rb") as f:
            return f.read(length)

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        with (self.folder / name).open("rb") as f:
            yield f

    # what preflight.check_adapter reads (preflight.AdapterFiles)

    def names(self) -> Collection[str]:
        return [p.name for p in self.folder.iterdir()]

    def entry(self, name: str) -> tuple[int, str | None]:
        path = self.folder / name
        try:
            st = path.stat()
        except OSError as exc:
            return 0, f"cannot be read ({exc.strerror or exc})"
        if not path.is_file():
            return 0, f"is not a regular file; expected the adapter's {name}"
        self._stats[name] = st
        return st.st_size, None

    def config(self, name: str) -> dict[str, Any]:
        from reconciler.adapters.preflight import read_config

        return read_config(self.folder / name, self._stat(name), self.cache)

    def weights(self, name: str) -> dict[str, Any]:
        from reconciler.adapters.preflight import read_weights

        return read_weights(self.folder / name, self._stat(name), self.cache)

    def _stat(self, name: str) -> os.stat_result:
        st = self._stats.get(name)
        return st if st is not None else (self.folder / name).stat()
