"""The places of one project, resolved once from the config's path and passed down.

Every file reconciler keeps beside a config is named here, and only here:

    finetunes.yaml                 the config (any name: -c)
    finetunes.lock                 the lockfile: the config's name with .lock
    .finetunes.lock.apply-lock     the apply lock, beside the file the lockfile is (if the
                                   lockfile is a symlink, beside its target: two configs that
                                   share one lockfile share one lock)
    .reconciler/                   local state, never committed (it holds a .gitignore of *)
        statcache.json             what was learnt by reading local files, keyed by stat
        catalogue.json             each account's model catalogue and when it was read
        sources/hf/, sources/url/  what was learnt about immutable remote content
        downloads/                 url: files as apply fetched and verified them
        sandbox/                   the embedded sandbox's state (--sandbox)

The config and the lockfile keep the spelling they were given (messages show them as the user
typed them); the state folder is beside the config as given too, so a relative -c stays
relative everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".reconciler"
LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class Project:
    config: Path
    lockfile: Path
    apply_lock: Path
    state_dir: Path
    statcache: Path
    catalogue: Path
    sources: Path  # sources/hf/<host>/<repo>/<commit>.json, sources/url/<sha256>.json
    downloads: Path
    sandbox_dir: Path

    @property
    def root(self) -> Path:
        """The folder the project's writes stay inside: the config's."""
        return self.config.parent

    def owned(self, path: Path) -> str | None:
        """What `path` is of this project's own files, if it is one (the config, the lockfile,
        its apply lock, anything in the state folder): a file the user names for output
        (`plan -o`) must not replace one. Compared as the files they lead to."""
        found = _resolved(path)
        for what, own in (
            ("the config", self.config),
            ("the lockfile", self.lockfile),
            ("the apply lock", self.apply_lock),
        ):
            if found == _resolved(own):
                return what
        state = _resolved(self.state_dir)
        if found == state or state in found.parents:
            return f"in the state folder {self.state_dir}"
        return None

    @classmethod
    def at(cls, config: Path) -> Project:
        config = Path(config)
        lockfile = config.with_suffix(LOCK_SUFFIX)
        state = config.parent / STATE_DIR
        return cls(
            config=config,
            lockfile=lockfile,
            apply_lock=apply_lock_for(lockfile),
            state_dir=state,
            statcache=state / "statcache.json",
            catalogue=state / "catalogue.json",
            sources=state / "sources",
            downloads=state / "downloads",
            sandbox_dir=state / "sandbox",
        )

    @classmethod
    def of(cls, where: Project | Path) -> Project:
        """`where` if it is a Project, else the project of the config at `where`: for callers
        that still pass a config path (cli/apply.py, bench/) until they pass the Project."""
        return where if isinstance(where, Project) else cls.at(where)


def apply_lock_for(lockfile: Path) -> Path:
    """Beside the lockfile itself: two configs that reach one lockfile by different paths (a
    symlinked lockfile or folder) take one lock, the lock of the file they both write."""
    real = lockfile.resolve()
    return real.with_name(f".{real.name}.apply-lock")


def _resolved(path: Path) -> Path:
    """`path` with its links and `..` resolved as far as they exist (a missing file too)."""
    return Path(path).resolve()
