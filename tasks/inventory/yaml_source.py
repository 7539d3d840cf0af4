"""YAML loading that remembers where every value came from.

Users fix inventories by line number, so each value's (file, line) is kept beside the data and
pydantic's error locations are mapped back to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

Loc = tuple  # a path into the data: ("hosts", 3, "amt_version")


@dataclass(frozen=True)
class Problem:
    """One finding about an input file, printed as FILE:LINE: field: message."""

    file: str
    line: int
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class InputError(Exception):
    """Bad input: carries every problem found so the user can fix them in one go."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class SourceMap:
    """Where each path of the loaded data was written."""

    default_file: str
    #: path in the merged data -> (file, line, the same path as written in that file)
    places: dict[Loc, tuple[str, int, Loc]] = field(default_factory=dict)

    def _closest(self, loc: Loc) -> tuple[Loc, tuple[str, int, Loc]]:
        loc = tuple(loc)
        probe = loc
        while probe:
            if probe in self.places:
                return probe, self.places[probe]
            probe = probe[:-1]
        return (), self.places.get((), (self.default_file, 1, ()))

    def where(self, loc: Loc) -> tuple[str, int]:
        """The closest recorded place: a missing field is reported at its parent's line."""
        _, (file, line, _) = self._closest(loc)
        return file, line

    def problem(self, loc: Loc, message: str, severity: str = "error") -> Problem:
        """Name the field as the user wrote it in the file that holds it (includes keep their own indices)."""
        found, (file, line, original) = self._closest(loc)
        return Problem(file, line, format_loc(tuple(original) + tuple(loc)[len(found):]), message, severity)

    def graft(self, other: SourceMap, src_prefix: Loc, dst_prefix: Loc) -> None:
        """Copy places recorded under src_prefix in another file to dst_prefix here (for include:)."""
        n = len(src_prefix)
        for loc, place in other.places.items():
            if loc[:n] == tuple(src_prefix):
                self.places[tuple(dst_prefix) + loc[n:]] = place


def _walk(node: yaml.Node, loc: Loc, file: str, smap: SourceMap, problems: list[Problem]) -> None:
    smap.places[loc] = (file, node.start_mark.line + 1, loc)
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in seen:
                problems.append(Problem(file, key_node.start_mark.line + 1, format_loc(loc + (key,)),
                                        f"duplicate key (first at line {seen[key]})"))
            seen[key] = key_node.start_mark.line + 1
            _walk(value_node, loc + (key,), file, smap, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), file, smap, problems)


def load_yaml_with_lines(path: Path) -> tuple[object, SourceMap]:
    """Parse one YAML document; syntax errors and duplicate keys become Problems with lines."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError([Problem(file, 0, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(file, 0, "", f"cannot read: {exc}")]) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml keeps marks and is ~2.5x faster
    try:
        node = loader.get_single_node()
        if node is None:
            raise InputError([Problem(file, 1, "", "file is empty")])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        msg = " ".join(x for x in (exc.context, exc.problem) if x)
        if exc.context_mark is not None and exc.problem_mark is not None and exc.context_mark.line != exc.problem_mark.line:
            msg += f" (the construct started at line {exc.context_mark.line + 1})"
        raise InputError([Problem(file, line, "", f"YAML syntax: {msg}")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(file, 1, "", f"YAML syntax: {exc}")]) from None
    finally:
        loader.dispose()
    smap = SourceMap(file)
    problems: list[Problem] = []
    _walk(node, (), file, smap, problems)
    if problems:
        raise InputError(problems)
    return data, smap
