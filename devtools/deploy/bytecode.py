"""Compiled bytecode for the Lambda bundle, so that a cold start does not compile Python.

`chalice package` and `chalice deploy` zip sources only, and Lambda's package directory is
read-only: without `.pyc` files every cold start compiles app.py, chalicelib/ and each
dependency again (docs/performance.md measures it). The files written here are hash-based
(PEP 552), so they never depend on modification times (a zip keeps them to 2 s, local time):
- in the zip, unchecked: nothing changes a bundle after packaging (a new one is packaged and
  compiled again), so the interpreter need not read and hash each source first (PEP 552's
  case for them; about 0.5 ms of the pixel's import);
- in a working tree (chalicelib/ before `chalice deploy`), checked: a developer edits the
  sources there, and a checked `.pyc` is used only while its source hashes the same.

The compiling interpreter must be the runtime's minor version: Chalice picks the Lambda
runtime from the interpreter it runs on, so the package step's own Python is the right one
(another version would look for its own `cpython-3XX` names and ignore these).
"""

from __future__ import annotations

import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Final

ZIP_MODE: Final = py_compile.PycInvalidationMode.UNCHECKED_HASH
TREE_MODE: Final = py_compile.PycInvalidationMode.CHECKED_HASH
# Lambda runs `python` without -O: the plain `.cpython-3XX.pyc` name, asserts kept.
_OPTIMIZE: Final = 0


def cache_name(source: str) -> str:
    """Where the interpreter looks for a source's bytecode (`a/__pycache__/b.cpython-311.pyc`).

    Spelled out rather than `importlib.util.cache_from_source`, which follows this machine's
    PYTHONPYCACHEPREFIX: the bundle needs the names Lambda's interpreter looks for."""
    path = PurePosixPath(source)
    return str(path.parent / "__pycache__" / f"{path.stem}.{sys.implementation.cache_tag}.pyc")


def compile_tree(directory: Path, mode: py_compile.PycInvalidationMode = TREE_MODE) -> int:
    """Write `__pycache__/*.pyc` beside every source under `directory`; return how many.

    `chalice deploy` zips chalicelib/ as it is on disk, `__pycache__` included.
    """
    if not directory.is_dir():
        return 0
    sources = sorted(p for p in directory.rglob("*.py") if "__pycache__" not in p.parts)
    for source in sources:
        py_compile.compile(
            str(source),
            cfile=str(source.parent / cache_name(source.name)),
            doraise=True,
            optimize=_OPTIMIZE,
            invalidation_mode=mode,
        )
    return len(sources)


def _is_bytecode(name: str) -> bool:
    return name.endswith(".pyc") and "__pycache__" in PurePosixPath(name).parts


def compile_zip(bundle: Path, mode: py_compile.PycInvalidationMode = ZIP_MODE) -> int:
    """Rewrite a deployment zip with bytecode beside every `.py` in it; return how many.

    Bytecode already in the zip (a developer's `__pycache__`, of any kind or version) is
    replaced, so the bundle is the same whatever the tree held. A source that does not
    compile (some packages ship templates named `.py`) keeps no bytecode, as before.
    """
    compiled = 0
    rewritten = bundle.with_name(bundle.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="bytecode-") as scratch:
        source_copy = Path(scratch) / "source.py"
        pyc_copy = Path(scratch) / "source.pyc"
        with (
            zipfile.ZipFile(bundle) as original,
            zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as output,
        ):
            for info in original.infolist():
                if _is_bytecode(info.filename):
                    continue
                data = original.read(info)
                output.writestr(info, data)
                if info.is_dir() or not info.filename.endswith(".py"):
                    continue
                source_copy.write_bytes(data)
                try:
                    py_compile.compile(
                        str(source_copy),
                        cfile=str(pyc_copy),
                        dfile=info.filename,
                        doraise=True,
                        optimize=_OPTIMIZE,
                        invalidation_mode=mode,
                    )
                except py_compile.PyCompileError:
                    continue
                entry = zipfile.ZipInfo(cache_name(info.filename), info.date_time)
                entry.external_attr = info.external_attr  # the source's permissions
                output.writestr(entry, pyc_copy.read_bytes(), zipfile.ZIP_DEFLATED)
                compiled += 1
    rewritten.replace(bundle)
    return compiled
