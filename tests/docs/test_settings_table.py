"""docs/settings.md is the one table of every setting: it must name every setting the code
reads, and nothing the code no longer reads, with the defaults and bounds the code has.

The code is read as text (its AST), not imported, so the test follows refactoring: a setting
is an upper-case name (`EVENTS_QUEUE`, `DESTINATIONS`) that a call takes as its first
argument (`reader.integer("BATCH_SIZE", ...)`, `environ.get("DEDUPE_TABLE")`,
`ConfigError("X", ...)`) or that subscripts a mapping (`environment["EVENTS_QUEUE"]`),
written as a literal or as a module constant holding one (`STAGE_VARIABLE = "..."`). An
f-string such as `f"PIXEL_RELAY_{name.upper()}_PORT"` is a family, matched by a row
`PIXEL_RELAY_<NAME>_PORT`. tests/ counts for what it reads from `os.environ` only.
Beside the code: every key of `.chalice/config.json`'s `environment_variables`, every key of
`deploy/stages.json`, and every variable the Makefile takes from its command line.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.docs.markdown import DOCS, ROOT, code_spans, table

SETTINGS_DOC = DOCS / "settings.md"
# Upper case, at least two characters: DESTINATIONS and CI are settings too.
SETTING = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]")
# Python read by the functions, the tooling, the benchmark and the examples users copy.
SCANNED = ("app.py", "chalicelib", "devtools", "bench", "examples")
# tests/ is scanned for the process environment only (`os.environ`, `os.getenv`): its
# knobs (SOAK_SEED, ...) are settings too, while its many `environment["X"]` are stages
# being built, which name settings the code reads anyway.
TESTS = "tests"

# Names that look like settings where they are read, with the reason each is not one.
NOT_SETTINGS = {
    "AWS_LAMBDA_FUNCTION_NAME": "set by Lambda itself; read to tell a Lambda import from a"
    " deploy or `chalice local` one, never set by a user",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "set by Lambda itself from the function's memory;"
    " the consumer holds DEDUPE_MEMORY_SIZE against it",
    "IN_PROGRESS": "a CloudFormation stack status suffix (`status.endswith(...)`)",
    "MATCH_REGEX": "a GTM trigger condition type, written into the container",
    "EQUALS": "a GTM trigger condition type, written into the container",
    "GET": "an HTTP method",
    "UUID": 'the id of an event source mapping in Lambda\'s answers (`mapping["UUID"]`)',
    "CHALICE_ON_MOTO_FAIL": "what a deploy test tells the chalice child process it starts",
    "TMPDIR": "the system's temporary folder, passed on to a child process a test starts",
    "SS": 'DynamoDB\'s string-set type in an item the erasure list reads (`item[...].get("SS")`)',
}
# The column "set in" says where a value goes; each place is checked against its source.
ENVIRONMENT_PLACES = {".chalice/config.json", "shell"}
STAGES_PLACE = "deploy/stages.json"
MAKE_PLACE = "make"
READERS = {"pixel", "consumer", "deploy", "ops", "local stack", "tests", "bench", "make"}
READERS |= {"examples", "Powertools"}


@dataclass(frozen=True)
class Read:
    """One place the code reads a setting."""

    name: str  # a family's name has `*` where the f-string had a value
    where: str  # path:line
    default: Any = None
    low: Any = None
    high: Any = None


def _python_files(top: str) -> Iterator[Path]:
    path = ROOT / top
    yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def _number(node: ast.expr, numbers: dict[str, int]) -> Any:
    """A keyword's value when it is a literal, a module's int constant, or arithmetic of
    those (`30 * 86_400`)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return numbers.get(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _number(node.operand, numbers)
        return -value if isinstance(value, int | float) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add):
        left, right = _number(node.left, numbers), _number(node.right, numbers)
        if isinstance(left, int) and isinstance(right, int):
            return left * right if isinstance(node.op, ast.Mult) else left + right
    return None


def _assignments(tree: ast.Module) -> Iterator[tuple[str, ast.expr]]:
    """Module-level `NAME = value` and `NAME: type = value`."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, node.value
        elif (
            isinstance(node, ast.AnnAssign)
            and node.value is not None
            and isinstance(node.target, ast.Name)
        ):
            yield node.target.id, node.value


def _numbers(tree: ast.Module) -> dict[str, int]:
    """Module-level int constants (`MAX_WRITE_THREADS: Final = 10`), for bounds."""
    found: dict[str, int] = {}
    for name, value in _assignments(tree):
        number = _number(value, found)
        if isinstance(number, int) and not isinstance(number, bool):
            found[name] = number
    return found


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound to a setting-shaped string (`STAGE_VARIABLE = "..."`)."""
    return {
        name: value.value
        for name, value in _assignments(tree)
        if isinstance(value, ast.Constant)
        and isinstance(value.value, str)
        and SETTING.fullmatch(value.value)
    }


@cache
def _trees() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(), str(path))
        for top in (*SCANNED, TESTS)
        for path in _python_files(top)
    }


@cache
def _all_constants() -> dict[str, set[str]]:
    """Every module's constants by name, for a constant imported from another module."""
    found: dict[str, set[str]] = {}
    for path, tree in _trees().items():
        if path.is_relative_to(ROOT / TESTS):
            continue
        for name, value in _constants(tree).items():
            found.setdefault(name, set()).add(value)
    return found


def _name(node: ast.expr, local: dict[str, str]) -> str | None:
    """The setting `node` names: a literal, a constant, or an f-string family."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if SETTING.fullmatch(node.value) else None
    if isinstance(node, ast.Name):
        if node.id in local:
            return local[node.id]
        values = _all_constants().get(node.id, set())
        return next(iter(values)) if len(values) == 1 else None
    if isinstance(node, ast.JoinedStr):
        parts = [part.value if isinstance(part, ast.Constant) else "*" for part in node.values]
        family = "".join(str(part) for part in parts)
        return family if SETTING.fullmatch(family.replace("*", "X")) else None
    return None


def _is_os_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _reads(path: Path, tree: ast.Module, environ_only: bool) -> Iterator[Read]:
    local, numbers = _constants(tree), _numbers(tree)
    where = str(path.relative_to(ROOT))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            if environ_only and not (
                isinstance(function, ast.Attribute)
                and (
                    (function.attr == "get" and _is_os_environ(function.value))
                    or (
                        function.attr == "getenv"
                        and isinstance(function.value, ast.Name)
                        and function.value.id == "os"
                    )
                )
            ):
                continue
            name = _name(node.args[0], local)
            if name is not None:
                keywords = {k.arg: _number(k.value, numbers) for k in node.keywords if k.arg}
                yield Read(
                    name,
                    f"{where}:{node.lineno}",
                    keywords.get("default"),
                    keywords.get("low"),
                    keywords.get("high"),
                )
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if environ_only and not _is_os_environ(node.value):
                continue
            name = _name(node.slice, local)
            if name is not None:
                yield Read(name, f"{where}:{node.lineno}")


@cache
def code_reads() -> tuple[Read, ...]:
    found: list[Read] = []
    for path, tree in _trees().items():
        in_tests = path.is_relative_to(ROOT / TESTS)
        found += [
            read
            for read in _reads(path, tree, environ_only=in_tests)
            if read.name not in NOT_SETTINGS
        ]
    return tuple(found)


def chalice_config_names() -> set[str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    names = set(config.get("environment_variables", {}))
    for stage in config.get("stages", {}).values():
        names |= set(stage.get("environment_variables", {}))
    return names


def stages_keys() -> set[str]:
    document = json.loads((ROOT / "deploy" / "stages.json").read_text())
    keys = set(document.get("defaults", {}))
    for stage in document.get("stages", {}).values():
        keys |= set(stage)
    return keys


_MAKE_REFERENCE = re.compile(r"\$\(([A-Z][A-Z0-9_]*)\)")
_MAKE_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Z][A-Z0-9_]*)\s*(\?=|:=|::=|\+=|=)")


def make_variables() -> set[str]:
    """What the Makefile takes from its command line (or the environment): variables it
    uses but never sets, and those it sets with `?=` (a default the caller may override)."""
    text = (ROOT / "Makefile").read_text()
    assigned: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = _MAKE_ASSIGNMENT.match(line)
        if match and not line.startswith("\t"):
            assigned.setdefault(match.group(1), set()).add(match.group(2))
    used = set(_MAKE_REFERENCE.findall(text))
    return {name for name in used if assigned.get(name, {"?="}) == {"?="}}


@dataclass(frozen=True)
class Row:
    name: str
    places: frozenset[str]
    cells: dict[str, str]

    @property
    def family(self) -> str:
        """`PIXEL_RELAY_<NAME>_PORT` as the scan writes an f-string: `PIXEL_RELAY_*_PORT`."""
        return re.sub(r"<[^>]+>", "*", self.name)


@cache
def documented() -> tuple[Row, ...]:
    rows = table(SETTINGS_DOC.read_text(), "setting")
    found: list[Row] = []
    for cells in rows:
        names = code_spans(cells["setting"])
        assert len(names) == 1, f"one setting per row: {cells['setting']}"
        places = frozenset(place.strip() for place in cells["set in"].split(","))
        found.append(Row(names[0], places, cells))
    return tuple(found)


def _rows_in(places: set[str]) -> dict[str, Row]:
    return {row.family: row for row in documented() if row.places & places}


def test_the_scan_finds_settings_where_the_code_reads_them() -> None:
    """A refactoring that hides every setting from the scan must fail here, not pass below."""
    names = {read.name for read in code_reads()}
    assert {"EVENTS_QUEUE", "BATCH_SIZE", "TOKEN_LEEWAY_SECONDS", "PIXEL_RELAY_*_PORT"} <= names
    assert len(names) >= 40, sorted(names)


def test_every_setting_the_code_reads_is_in_the_table() -> None:
    rows = _rows_in(ENVIRONMENT_PLACES)
    missing = sorted(
        {f"{read.name} (read at {read.where})" for read in code_reads() if read.name not in rows}
        | {f"{name} (in .chalice/config.json)" for name in chalice_config_names() - set(rows)}
    )
    assert not missing, (
        f"settings missing from {SETTINGS_DOC.relative_to(ROOT)} (a row each, set in"
        f" `.chalice/config.json` or `shell`): {missing}"
    )


def test_the_table_names_no_setting_the_code_no_longer_reads() -> None:
    read = {read.name for read in code_reads()} | chalice_config_names()
    stale = sorted(family for family in _rows_in(ENVIRONMENT_PLACES) if family not in read)
    assert not stale, f"documented but read nowhere: {stale}"


def test_every_deploy_setting_is_in_the_table_and_no_other() -> None:
    rows = set(_rows_in({STAGES_PLACE}))
    assert rows == stages_keys(), (
        f"deploy/stages.json keys without a row: {sorted(stages_keys() - rows)};"
        f" rows for keys it no longer has: {sorted(rows - stages_keys())}"
    )


def test_every_make_variable_is_in_the_table_and_no_other() -> None:
    rows = set(_rows_in({MAKE_PLACE}))
    assert rows == make_variables(), (
        f"Makefile variables without a row: {sorted(make_variables() - rows)};"
        f" rows for variables it no longer reads: {sorted(rows - make_variables())}"
    )


def test_each_row_says_where_it_is_set_and_who_reads_it() -> None:
    places = ENVIRONMENT_PLACES | {STAGES_PLACE, MAKE_PLACE}
    names = [row.name for row in documented()]
    assert len(names) == len(set(names)), "a setting has two rows"
    for row in documented():
        assert row.places <= places, f"{row.name}: set in {sorted(row.places - places)}?"
        readers = {reader.strip() for reader in row.cells["read by"].split(",")}
        assert readers <= READERS, f"{row.name}: read by {sorted(readers - READERS)}?"
        assert row.cells["what it does"], f"{row.name}: say what it does"


def _mentions(cell: str, value: Any) -> bool:
    """Whether a cell states `value`: `86400`, `86,400` and `86_400` alike; true/false."""
    if isinstance(value, bool):
        return str(value).lower() in cell.lower()
    if isinstance(value, int | float):
        digits = re.sub(r"(?<=\d)[,_](?=\d{3})", "", cell)
        return re.search(rf"(?<![\d.]){value}(?![\d])", digits) is not None
    return str(value) in cell


@pytest.mark.parametrize("part", ["default", "low", "high"])
def test_defaults_and_bounds_are_the_code_s(part: str) -> None:
    """Where the code states a default or a bound as a literal, the row states the same."""
    rows = _rows_in(ENVIRONMENT_PLACES)
    column = "default" if part == "default" else "allowed values"
    wrong = sorted(
        f"{read.name}: {part} is {getattr(read, part)!r} ({read.where}), the row says"
        f" {rows[read.name].cells[column]!r}"
        for read in code_reads()
        if getattr(read, part) is not None
        and read.name in rows
        and not _mentions(rows[read.name].cells[column], getattr(read, part))
    )
    assert not wrong, wrong
