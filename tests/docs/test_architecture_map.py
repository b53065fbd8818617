"""docs/architecture.md's module map matches the tree: every Python module of the Lambda
bundle, the tooling and the benchmark has a row, and every row names a path that exists.

A row is `| `path` | job |` in a table headed `| path | job |`; a directory's row ends in
`/` and covers its `__init__.py` and `__main__.py` (a package's other modules need rows of
their own). When a module moves, is split or is added, its row moves with it.
"""

from __future__ import annotations

from pathlib import Path

from tests.docs.markdown import DOCS, ROOT, code_spans, tables

MAP = DOCS / "architecture.md"
MAPPED = ("app.py", "chalicelib", "devtools", "bench")
PACKAGE_FILES = {"__init__.py", "__main__.py"}


def mapped_paths() -> list[str]:
    paths: list[str] = []
    for rows in tables(MAP.read_text(), "path"):
        for row in rows:
            names = code_spans(row["path"])
            assert len(names) == 1, f"one path per row: {row['path']}"
            assert row["job"], f"{names[0]}: say what it does"
            paths.append(names[0])
    assert paths, f"{MAP.relative_to(ROOT)} has no module map (tables headed `| path | job |`)"
    return paths


def modules() -> set[str]:
    found: set[str] = set()
    for top in MAPPED:
        path = ROOT / top
        files = [path] if path.is_file() else path.rglob("*.py")
        found |= {file.relative_to(ROOT).as_posix() for file in files}
    return found


def _covered(module: str, rows: set[str]) -> bool:
    if module in rows:
        return True
    path = Path(module)
    return path.name in PACKAGE_FILES and f"{path.parent.as_posix()}/" in rows


def test_every_module_has_a_row() -> None:
    rows = set(mapped_paths())
    missing = sorted(module for module in modules() if not _covered(module, rows))
    assert not missing, f"modules without a row in {MAP.relative_to(ROOT)}: {missing}"


def test_every_row_names_a_path_that_exists() -> None:
    gone = [
        path
        for path in mapped_paths()
        if not (ROOT / path).exists() or path.endswith("/") != (ROOT / path).is_dir()
    ]
    assert not gone, f"rows in {MAP.relative_to(ROOT)} for paths that do not exist: {gone}"


def test_no_path_has_two_rows() -> None:
    paths = mapped_paths()
    assert len(paths) == len(set(paths)), sorted({p for p in paths if paths.count(p) > 1})


def test_the_map_stays_in_its_rooms() -> None:
    outside = [p for p in mapped_paths() if not p.startswith(tuple(MAPPED))]
    assert not outside, f"the map covers {MAPPED}; elsewhere: {outside}"
