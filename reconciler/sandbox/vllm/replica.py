"""One vLLM server of the fleet: which adapters it has loaded, and which of those its engine
holds in memory. A restart (`_sandbox/restart`) forgets every adapter, as a real server's does.
The names it has loaded are also kept in the sandbox's state folder (sandbox choice): stopping
and starting the sandbox, as every `--sandbox` command does, is not a restart of its servers,
just as its Cloudflare and Cohere state outlives the process.

Two registries, as in vLLM:

- The API server's (vllm/entrypoints/openai/models/serving.py, OpenAIServingModels.lora_requests):
  name -> (lora_path, int id), what /v1/models lists. It has no size limit.
- The engine's CPU cache (vllm/lora/worker_manager.py, LRUCacheWorkerLoRAManager), holding at
  most --max-cpu-loras adapters (= --max-loras unless set): loading one more evicts the least
  recently used. A request for an evicted adapter makes the worker read its lora_path again,
  so a folder changed on disk since the load is what then answers (the sandbox re-reads the
  files, and the answer's fingerprint follows them).

Thread safety: one lock guards both registries; a load holds a per-name lock for its whole
duration (vLLM's lora_resolver_lock[lora_name]), so two loads of one name run one after the
other while loads of different names overlap, sleeping their latency side by side.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from reconciler.sandbox.vllm.adapter_files import (
    AdapterFiles,
    AdapterNotFound,
    AdapterRefused,
    read_adapter,
)
from reconciler.sandbox.vllm.options import FleetOptions
from reconciler.sandbox.vllm.wire import WireError, error

# How vLLM's V1 engine reports an exception raised in its engine-core process: the API
# server sees Exception(f"Call to {method} method failed: {error}") (vllm/v1/engine/core.py,
# EngineCore._handle_client_request; core_client.py, _process_utility_output).
ENGINE_FAILED = "Call to add_lora method failed: "


class ReplicaGone(Exception):
    """The replica restarted while this request was in it: the request dies with the old
    process, its connection closed without an answer."""


@dataclass(frozen=True)
class Adapter:
    name: str
    path: str  # lora_path as the load request gave it: the /v1/models card's root
    int_id: int


def load_failure(exc: AdapterNotFound | AdapterRefused) -> WireError:
    """vLLM's answer to a failed engine add_lora (serving.py, load_lora_adapter): 404 when
    the message says "No adapter found", else 400."""
    message = ENGINE_FAILED + str(exc)
    if isinstance(exc, AdapterNotFound):
        return error(404, "NotFoundError", message)
    return error(400, "BadRequestError", message)


class Replica:
    def __init__(self, index: int, options: FleetOptions, state: Path | None = None) -> None:
        self.index = index
        self._state = state  # where its loaded names are kept, if anywhere
        self.options = options
        self.latency = options.latency(index)
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._adapters: dict[str, Adapter] = {}  # insertion order is /v1/models' order
        self._cache: OrderedDict[int, tuple[str, ...]] = OrderedDict()  # int id -> digests
        self._ids = 0
        self._generation = 0
        self.down: str | None = None  # None when up, else how it is down (mount.py)
        self._recall()

    def _recall(self) -> None:
        """The names loaded before the sandbox last stopped (re-read from their folders at
        their first request, as after an eviction). A state file that is not the sandbox's
        own is ignored: the replica starts empty, as after a restart."""
        if self._state is None or not self._state.is_file():
            return
        try:
            rows = json.loads(self._state.read_text("utf-8"))
            adapters = [Adapter(str(r["name"]), str(r["path"]), int(r["int_id"])) for r in rows]
        except (OSError, ValueError, TypeError, KeyError):
            return
        self._adapters = {a.name: a for a in adapters}
        self._ids = max((a.int_id for a in adapters), default=0)

    def _keep(self) -> None:
        """Write the loaded names to the state file (lock held), atomically."""
        if self._state is None:
            return
        self._state.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(a) for a in self._adapters.values()]
        fd, temp = tempfile.mkstemp(dir=self._state.parent, prefix=".replica-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(rows, f)
        os.replace(temp, self._state)

    def _name_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    def _remember(self, int_id: int, files: AdapterFiles) -> None:
        """Put an adapter in the engine's cache, evicting the least recently used (lock held)."""
        self._cache[int_id] = (*files.digests,)
        self._cache.move_to_end(int_id)
        while len(self._cache) > self.options.max_loras:
            self._cache.popitem(last=False)

    def load(self, name: str, path: str, inplace: bool) -> str:
        """Load an adapter as vLLM's load_lora_adapter does; the plain-text success, or a
        WireError with vLLM's error (or ReplicaGone after a restart)."""
        if not name or not path:
            message = "Both 'lora_name' and 'lora_path' must be provided."
            raise error(400, "InvalidUserInput", message)
        with self._name_lock(name):
            with self._lock:
                generation = self._generation
                known = self._adapters.get(name)
                if known is not None and not inplace:
                    raise error(
                        400,
                        "InvalidUserInput",
                        f"The lora adapter '{name}' has already been loaded. If you want to load"
                        " the adapter in place, set 'load_inplace' to True.",
                    )
                if known is None:
                    self._ids += 1  # vLLM counts the id before the engine tries the load
                int_id = known.int_id if known is not None else self._ids
            started = time.monotonic()
            files: AdapterFiles | None = None
            failure: WireError | None = None
            try:
                files = read_adapter(name, path, self.options.max_lora_rank)
            except (AdapterNotFound, AdapterRefused) as exc:
                failure = load_failure(exc)
            time.sleep(max(0.0, self.latency - (time.monotonic() - started)))
            with self._lock:
                if self._generation != generation:
                    raise ReplicaGone(f"vLLM replica {self.index} restarted during the load")
                if failure is not None:
                    raise failure
                assert files is not None
                self._adapters[name] = Adapter(name, path, int_id)
                self._remember(int_id, files)
                self._keep()
        return f"Success: LoRA adapter '{name}' added successfully."

    def unload(self, name: str) -> str:
        if not name:
            message = "'lora_name' needs to be provided to unload a LoRA adapter."
            raise error(400, "InvalidUserInput", message)
        with self._name_lock(name), self._lock:
            if name not in self._adapters:
                raise error(404, "NotFoundError", f"The lora adapter '{name}' cannot be found.")
            # vLLM only forgets the name: the engine's cached copy ages out of its LRU.
            del self._adapters[name]
            self._keep()
        return f"Success: LoRA adapter '{name}' removed successfully."

    def adapters(self) -> list[Adapter]:
        with self._lock:
            return list(self._adapters.values())

    def serving(self, name: str) -> tuple[Adapter, tuple[str, ...]] | None:
        """The loaded adapter called `name` and the digests of the files it answers with, or
        None if no adapter of that name is loaded. An adapter evicted from the engine's cache
        is read again from its path, as a vLLM worker does; if that read fails the sandbox
        answers 500 (vLLM's engine fails the request, and may not survive it)."""
        with self._lock:
            adapter = self._adapters.get(name)
            if adapter is None:
                return None
            digests = self._cache.get(adapter.int_id)
            if digests is not None:
                self._cache.move_to_end(adapter.int_id)
                return adapter, digests
        try:
            files = read_adapter(adapter.name, adapter.path, self.options.max_lora_rank)
        except (AdapterNotFound, AdapterRefused) as exc:
            raise error(500, "InternalServerError", str(exc)) from None
        with self._lock:
            if self._adapters.get(name) == adapter:
                self._remember(adapter.int_id, files)
        return adapter, files.digests

    def restart(self) -> None:
        """What a restart of the server does: every adapter forgotten, ids counted afresh."""
        with self._lock:
            self._adapters.clear()
            self._cache.clear()
            self._ids = 0
            self._generation += 1
            self.down = None
            self._keep()
