"""YAML to plain data, keeping where each value and key stood so messages can name a line.

PyYAML's composer gives nodes with marks; we build the data ourselves from them so that we can
also refuse what PyYAML accepts silently (duplicate keys) and bound the work an alias-heavy
document can cause (a "billion laughs" file composes small but expands exponentially).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.base.errors import ConfigError, Problem

Path_ = tuple[str | int, ...]

MAX_NODES = 200_000  # far above any real config, far below what exhausts memory
# Far deeper than any config (a check's messages sit at depth 6), far shallower than the
# recursion of a composer or of a walk over the data: 5,000 nested '[' exhaust Python's stack.
MAX_DEPTH = 64
_KINDS = {
    stat.S_IFDIR: "is a directory, expected a YAML file",
    stat.S_IFIFO: "is a named pipe (FIFO), expected a regular YAML file",
    stat.S_IFCHR: "is a character device, expected a regular YAML file",
    stat.S_IFBLK: "is a block device, expected a regular YAML file",
    stat.S_IFSOCK: "is a socket, expected a regular YAML file",
}


def read_text(path: Path, shown: str, max_bytes: int) -> tuple[str, os.stat_result]:
    """A config's text and the stat of what was read. Only a regular file is read, and never
    more than `max_bytes`: -c /dev/zero would read forever, and a FIFO would wait for a writer
    forever. Raises ConfigError with one problem."""

    def refuse(message: str) -> ConfigError:
        return ConfigError([Problem(shown, None, None, message)])

    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer; it changes nothing for a file
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise refuse("file not found (use -c to name the config)") from None
    except IsADirectoryError:
        raise refuse(_KINDS[stat.S_IFDIR]) from None
    except PermissionError:
        raise refuse("cannot be read: permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing elsewhere
            raise refuse("is not a regular file, expected a YAML file") from None
        raise refuse(f"cannot be read ({exc.strerror})") from None
    too_large = (
        f"is larger than {max_bytes // 1_000_000} MB; a config that large "
        "is not one reconciler wrote or reads: is it the right file?"
    )
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(_KINDS.get(stat.S_IFMT(st.st_mode), "is not a regular file"))
        if st.st_size > max_bytes:
            raise refuse(too_large)
        chunks: list[bytes] = []
        left = max_bytes + 1  # it may have grown since the stat
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise refuse(too_large)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"is not UTF-8 text ({exc.reason})") from None
    if "\r" in text:  # as Path.read_text reads it: universal newlines
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, st


@dataclass
class Source:
    file: str
    data: Any
    value_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def mark(self, path: Path_, *, key: bool = False) -> tuple[int, int] | None:
        """The mark of `path`, or of its nearest ancestor that has one."""
        marks = self.key_marks if key else self.value_marks
        probe = tuple(path)
        while True:
            if probe in marks:
                return marks[probe]
            if key and probe in self.value_marks:
                return self.value_marks[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        where = self.mark(path, key=key)
        line, column = where if where else (None, None)
        return Problem(self.file, line, column, message)


class _TooLarge(Exception):
    pass


class _TooDeep(Exception):
    def __init__(self, where: tuple[int, int] | None) -> None:
        super().__init__()
        self.where = where


def _start(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _compose(text: str) -> Node | None:
    """libyaml's composer when PyYAML has it: the same nodes and marks, ten times faster (a
    1,000-finetune config: 0.35 s -> 0.03 s). Its error texts differ from PyYAML's, so a
    document it refuses is composed again in Python for the message users know."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except yaml.MarkedYAMLError as exc:
            # libyaml stops at 1,000 levels; PyYAML's composer would recurse until Python's
            # stack runs out, so its message is not asked for
            if "maximum nesting depth" in str(exc.problem) and exc.problem_mark is not None:
                raise _TooDeep((exc.problem_mark.line + 1, exc.problem_mark.column + 1)) from None
        except yaml.YAMLError:
            pass
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise _TooDeep(None) from None


def parse(text: str, file: str) -> tuple[Source | None, list[Problem]]:
    """Parse one YAML document. Returns the source, or None with the problems that stopped it."""
    try:
        root = _compose(text)
    except _TooDeep as exc:
        return None, [_too_deep(file, exc.where)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        what = exc.problem or exc.context or "invalid YAML"
        return None, [Problem(file, line, column, f"invalid YAML: {what}")]
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: no mark of its own
        position = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        what = (
            f"unacceptable character #x{exc.character:04x}"
            if isinstance(exc.character, int)
            else "unacceptable byte"
        )
        return None, [Problem(file, line, column, f"invalid YAML: {what}: {exc.reason}")]
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, [Problem(file, None, None, f"invalid YAML: {first}")]
    source = Source(file=file, data=None)
    if root is None:
        return None, [
            Problem(
                file, 1, 1, "the file is empty: expected a mapping with 'version' and 'finetunes'"
            )
        ]
    problems: list[Problem] = []
    budget = [MAX_NODES]
    try:
        source.data = _build(root, (), source, problems, SafeConstructor(), budget)
    except _TooDeep as exc:
        return None, [_too_deep(file, exc.where)]
    except _TooLarge:
        line, column = _start(root)
        return None, [
            Problem(
                file,
                line,
                column,
                f"the document expands to more than {MAX_NODES} values (YAML aliases?); refused",
            )
        ]
    return source, problems


def _too_deep(file: str, where: tuple[int, int] | None) -> Problem:
    line, column = where if where else (None, None)
    return Problem(
        file,
        line,
        column,
        f"values nested more than {MAX_DEPTH} levels deep (or a YAML alias inside itself); refused",
    )


def _build(
    node: Node,
    path: Path_,
    source: Source,
    problems: list[Problem],
    constructor: SafeConstructor,
    budget: list[int],
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if len(path) > MAX_DEPTH:  # the path is the depth: the check costs nothing
        raise _TooDeep(_start(node))
    source.value_marks.setdefault(path, _start(node))
    if isinstance(node, ScalarNode):
        try:
            return constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            line, column = _start(node)
            problems.append(Problem(source.file, line, column, f"invalid value: {exc}"))
            return node.value
    if isinstance(node, SequenceNode):
        return [
            _build(item, (*path, i), source, problems, constructor, budget)
            for i, item in enumerate(node.value)
        ]
    if isinstance(node, MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                line, column = _start(key_node)
                problems.append(
                    Problem(source.file, line, column, "only plain keys are supported here")
                )
                continue
            key = key_node.value
            child = (*path, key)
            if key in result:
                line, column = _start(key_node)
                first = source.key_marks[child]
                problems.append(
                    Problem(
                        source.file,
                        line,
                        column,
                        f"duplicate key '{key}' (first at line {first[0]}); "
                        "YAML would silently keep only the last",
                    )
                )
                continue
            source.key_marks[child] = _start(key_node)
            result[key] = _build(value_node, child, source, problems, constructor, budget)
        return result
    line, column = _start(node)
    problems.append(Problem(source.file, line, column, f"unsupported YAML node {node.tag}"))
    return None
