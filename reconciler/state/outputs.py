"""What the apps that use the finetunes need to know: which name to call, from the lockfile only.

`reconciler output` prints it, and the config's `outputs:` files receive it after an apply, so
a Worker can `import loras from "./loras.json"` and pass `lora: loras["support-bot"].name` to
`env.AI.run`. No network, no credentials: the lockfile is the record of what is current.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.base.errors import PlanError
from reconciler.base.model import Recorded
from reconciler.state.atomic import write_atomic

FORMATS = ("json", "env")


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
    if fmt == "json":
        return json.dumps(values, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    lines = [f"{env_name(name)}={v['name']}" for name, v in sorted(values.items())]
    return "".join(f"{line}\n" for line in lines)


def format_of(path: str) -> str:
    return "env" if path.endswith(".env") else "json"


def write(root: Path, paths: tuple[str, ...], recorded: Recorded) -> list[Path]:
    """Write each `outputs:` file (relative to `root`, the config's folder) whose content would
    change, atomically, so a build never reads half a file. A file outside the folder, or
    reached through a symlink inside it, is refused (state.atomic.RefusedPath, an OSError).
    Returns the files written."""
    values = current(recorded)
    written = []
    for relative in paths:
        target = root / relative
        text = render(values, format_of(relative))
        try:  # a symlink goes on to the writer, which refuses it
            if not target.is_symlink() and target.read_text("utf-8") == text:
                continue
        except (OSError, UnicodeDecodeError):
            pass
        write_atomic(target, text, project_root=root)
        written.append(target)
    return written
