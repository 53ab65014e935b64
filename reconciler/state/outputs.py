"""What the apps that use the finetunes need to know: which name to call, from the lockfile only.

`reconciler output` prints it, and the config's `outputs:` files receive it after an apply, so
a Worker can `import loras from "./loras.json"` and pass `lora: loras["support-bot"].name` to
`env.AI.run`. No network, no credentials: the lockfile is the record of what is current.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.base import strictjson
from reconciler.base.errors import OutputsError, PlanError
from reconciler.base.model import Recorded
from reconciler.project import STATE_DIR
from reconciler.state.atomic import NOT_A_FILE, SYMLINK, write_atomic

FORMATS = ("json", "env")
MAX_OUTPUT_BYTES = 16 * 1024 * 1024  # an existing file read to compare; 1,000 names: 300 kB
ENV_CLASH = "holds one line per finetune, and"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def path_problem(relative: str, config_name: str) -> str | None:
    """Why an `outputs:` path may not be written, or None: the config's check (validate
    refuses it before anything runs) of what the writer (state.atomic) refuses again."""
    if _CONTROL.search(relative):
        return "has a control character; give a plain path relative to the config's folder"
    if os.path.isabs(relative):
        return (
            "is absolute; outputs are written inside the config's folder: give a path "
            "relative to it"
        )
    normal = os.path.normpath(relative)
    first = normal.split(os.sep, 1)[0]
    if first == os.pardir:
        return "leaves the config's folder ('..'); outputs are written inside it"
    if first == STATE_DIR:
        return f"is inside {STATE_DIR}/, reconciler's own state; choose another folder"
    if normal == config_name:
        return "is the config itself"
    return None


def same_path(relative: str) -> str:
    """The spelling two `outputs:` paths share when they name one file."""
    return os.path.normpath(relative)


def env_collisions(names: Iterable[str]) -> list[str]:
    """Each pair of finetune names that one .env line name would stand for, said plainly."""
    first: dict[str, str] = {}
    found = []
    for name in sorted(names):
        key = env_name(name)
        if key in first:
            found.append(f"{first[key]} and {name} both become {key}")
        else:
            first[key] = name
    return found


def current(recorded: Recorded, names: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Per logical finetune, its current version: {NAME: {name, id, provider, account, model,
    version}}; `name` is the one to call (the remote name), `version` None when unversioned."""
    unknown = [n for n in names if n not in recorded.finetunes]
    if unknown:
        raise PlanError(
            f"{', '.join(unknown)}: not in the lockfile (nothing is current for it yet: "
            "`reconciler apply` makes it)"
        )
    return {
        name: {
            "name": f.remote_name or f.name,
            "id": f.id,
            "provider": f.provider,
            "account": f.account,
            "model": f.model,
            "version": f.version,
        }
        for name, f in sorted(recorded.finetunes.items())
        if not names or name in names
    }


def env_name(name: str) -> str:
    """RECONCILER_<NAME>: upper-cased, every character that is not a letter or digit as _."""
    return "RECONCILER_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def render(values: Mapping[str, Mapping[str, Any]], fmt: str) -> str:
    """The file's text. A .env of two names that become one line name is refused
    (OutputsError naming both): one of them would be lost, whichever came last."""
    if fmt == "json":
        return json.dumps(values, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    collisions = env_collisions(values)
    if collisions:
        raise OutputsError(f"a .env file {ENV_CLASH} {'; '.join(collisions)}; rename one of them")
    lines = [f"{env_name(name)}={v['name']}" for name, v in sorted(values.items())]
    return "".join(f"{line}\n" for line in lines)


def format_of(path: str) -> str:
    return "env" if path.endswith(".env") else "json"


def due(root: Path, paths: tuple[str, ...], recorded: Recorded) -> list[tuple[str, str]]:
    """The `outputs:` files an apply would write, each with why: "missing", "stale" (its
    content differs), or what the writer will refuse (a symlink, not a regular file), so
    that plan says so before an apply fails on it."""
    values = current(recorded)
    found = []
    for relative in paths:
        target = root / relative
        try:
            kind = stat.S_IFMT(os.lstat(target).st_mode)
        except FileNotFoundError:
            found.append((relative, "missing"))
            continue
        except OSError as exc:  # a file in the way of a folder: the writer names it
            found.append((relative, f"cannot be written: {exc.strerror}"))
            continue
        if kind == stat.S_IFLNK:
            found.append((relative, f"cannot be written: {SYMLINK}"))
        elif kind != stat.S_IFREG:
            found.append((relative, f"cannot be written: {NOT_A_FILE}"))
        elif not _holds(target, render(values, format_of(relative))):
            found.append((relative, "stale"))
    return found


def write(root: Path, paths: tuple[str, ...], recorded: Recorded) -> list[Path]:
    """Write each `outputs:` file (relative to `root`, the config's folder) whose content would
    change, atomically, so a build never reads half a file. A file outside the folder, reached
    through a symlink inside it, or not a regular file (a FIFO) is refused
    (state.atomic.RefusedPath, an OSError). Returns the files written."""
    values = current(recorded)
    written = []
    for relative in paths:
        target = root / relative
        text = render(values, format_of(relative))
        if _holds(target, text):
            continue
        write_atomic(target, text, project_root=root)
        written.append(target)
    return written


def _holds(target: Path, text: str) -> bool:
    """Whether `target` is a regular file (not a symlink) holding `text`: read without
    blocking on a FIFO and within bounds, so a device or a FIFO is not waited on or read
    forever (it goes on to the writer, which refuses it)."""
    if target.is_symlink():
        return False
    try:
        return strictjson.read_bytes(target, MAX_OUTPUT_BYTES) == text.encode("utf-8")
    except (OSError, strictjson.Refused):
        return False
