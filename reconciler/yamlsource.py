"""YAML to plain data, keeping where each value and key stood so messages can name a line.

PyYAML's composer gives nodes with marks; we build the data ourselves from them so that we can
also refuse what PyYAML accepts silently (duplicate keys) and bound the work an alias-heavy
document can cause (a "billion laughs" file composes small but expands exponentially).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Problem

Path_ = tuple[str | int, ...]

MAX_NODES = 200_000  # far above any real config, far below what exhausts memory


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
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse(text: str, file: str) -> tuple[Source | None, list[Problem]]:
    """Parse one YAML document. Returns the source, or None with the problems that stopped it."""
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        what = exc.problem or exc.context or "invalid YAML"
        return None, [Problem(file, line, column, f"invalid YAML: {what}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, None, f"invalid YAML: {exc}")]
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
