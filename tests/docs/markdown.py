"""Reading the tables of the project's markdown documents, for the tests that hold a document
to the tree it describes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_CODE = re.compile(r"`([^`]+)`")


def cells(line: str) -> list[str]:
    """The cells of one table row, `|` inside backticks or escaped as `\\|` kept."""
    body = line.strip().removeprefix("|").removesuffix("|")
    found: list[str] = []
    current: list[str] = []
    in_code = False
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and body[index + 1 : index + 2] == "|":
            current.append("|")
            index += 2
            continue
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            found.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    found.append("".join(current).strip())
    return found


def table(text: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the first table whose first header cell is `first_header`, each a dict
    from header to cell. Fails when there is no such table: a renamed column must be seen."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not line.startswith("|") or cells(line)[0] != first_header:
            continue
        header = cells(line)
        rows: list[dict[str, str]] = []
        for row in lines[number + 2 :]:
            if not row.startswith("|"):
                break
            values = cells(row)
            assert len(values) == len(header), f"a row has {len(values)} cells: {row}"
            rows.append(dict(zip(header, values, strict=True)))
        return rows
    raise AssertionError(f"no table whose first column is {first_header!r}")


def code_spans(cell: str) -> list[str]:
    """What a cell holds in backticks: the names and paths it states."""
    return _CODE.findall(cell)
