"""Bytecode for the Lambda bundle: hash-based `.pyc` files the interpreter will use, beside
every source, whatever `__pycache__` the tree held before (checked in a working tree)."""

from __future__ import annotations

import importlib.util
import marshal
import sys
import zipfile
from pathlib import Path

from devtools.deploy.bytecode import cache_name, compile_tree, compile_zip

TAG = sys.implementation.cache_tag
# PEP 552 flags: bit 0 hash-based, bit 1 the interpreter checks the source's hash.
CHECKED_HASH = 0b11
UNCHECKED_HASH = 0b01


def assert_pyc(pyc: bytes, source: bytes, filename: str, flags: int) -> None:
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == flags
    assert pyc[8:16] == importlib.util.source_hash(source)
    code = marshal.loads(pyc[16:])
    assert code.co_filename == filename


def test_cache_names_are_the_ones_the_interpreter_looks_for() -> None:
    assert cache_name("app.py") == f"__pycache__/app.{TAG}.pyc"
    assert (
        cache_name("chalicelib/signing/keys.py") == f"chalicelib/signing/__pycache__/keys.{TAG}.pyc"
    )


def test_a_tree_gets_a_checked_pyc_beside_every_source(tmp_path: Path) -> None:
    package = tmp_path / "lib"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "mod.py").write_text("VALUE = 1\n")
    assert compile_tree(package) == 2
    pyc = package / "sub" / "__pycache__" / f"mod.{TAG}.pyc"
    assert_pyc(pyc.read_bytes(), b"VALUE = 1\n", str(package / "sub" / "mod.py"), CHECKED_HASH)
    assert compile_tree(tmp_path / "missing") == 0


def test_a_zip_gets_bytecode_and_loses_what_the_tree_left(tmp_path: Path) -> None:
    bundle = tmp_path / "deployment.zip"
    stale = f"chalicelib/__pycache__/old.{TAG}.pyc"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("app.py", "import chalicelib\n")
        archive.writestr("chalicelib/__init__.py", "")
        archive.writestr("chalicelib/pixel.py", "ANSWER = 42\n")
        archive.writestr(stale, b"not bytecode")
        archive.writestr("vendor/template.py", "{% if jinja %}\n")
        archive.writestr("vendor/data.json", "{}")
    assert compile_zip(bundle) == 3
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        assert stale not in names
        assert "vendor/data.json" in names
        assert "vendor/template.py" in names
        assert cache_name("vendor/template.py") not in names  # does not compile: left as is
        assert_pyc(
            archive.read(cache_name("chalicelib/pixel.py")),
            b"ANSWER = 42\n",
            "chalicelib/pixel.py",
            UNCHECKED_HASH,  # nothing changes a bundle after packaging
        )
        assert cache_name("app.py") in names
        assert cache_name("chalicelib/__init__.py") in names


def test_the_interpreter_uses_the_bytecode_and_drops_it_when_the_source_changes(
    tmp_path: Path,
) -> None:
    """A checked pyc whose code differs from its source proves which one was run."""
    package = tmp_path / "bundled"
    package.mkdir()
    source = package / "__init__.py"
    source.write_text("WHERE = 'source'\n")
    compile_tree(package)
    pyc = package / "__pycache__" / f"__init__.{TAG}.pyc"
    # Same source hash, other code: what a stale file would look like if hashes were ignored.
    other = compile("WHERE = 'bytecode'\n", str(source), "exec")
    pyc.write_bytes(pyc.read_bytes()[:16] + marshal.dumps(other))

    def load() -> object:
        spec = importlib.util.spec_from_file_location("bundled", source)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.WHERE

    assert load() == "bytecode"  # the hash matches: the .pyc is used, nothing compiled
    source.write_text("WHERE = 'edited'\n")
    assert load() == "edited"  # the source changed: its bytecode is not trusted
