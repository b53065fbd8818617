"""Rules of the house that ruff, mypy and import-linter cannot state, read from the source:

- no module imports a test module (`test_*.py`) or a conftest.py: what tests share lives in
  conftest.py (fixtures), tests/factories.py or a helper module beside them;
- no code uses a private boto3 or botocore name (`boto3._get_default_session`, a client's
  `_endpoint`, a session's `_session`, a loader's `_cache`): they change without notice.

Every import counts, also inside a function or under TYPE_CHECKING; code in a string (a
script run in a subprocess) is not read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import boto3
import botocore.session

from devtools.paths import ROOT

PACKAGES = ("app.py", "chalicelib", "devtools", "bench", "tests")
LIBRARIES = frozenset({"boto3", "botocore"})


def sources(root: Path = ROOT) -> list[Path]:
    found: list[Path] = []
    for name in PACKAGES:
        path = root / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return found


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def syntax(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported_names(path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every dotted name an import in `path` may refer to: the module, and for `from m import
    x` also `m.x` (x may be a module). Relative imports are made absolute."""
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(syntax(path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{module}" if module else base
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def as_test_module(name: str, modules: frozenset[str]) -> str | None:
    """The test module or conftest that `name` is, or is a name in; None for anything else."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            last = parts[end - 1]
            return candidate if last.startswith("test_") or last == "conftest" else None
    return None


def imports_of_test_modules(root: Path = ROOT) -> set[str]:
    """`<file> imports <test module>` for every such import under `root`."""
    modules = frozenset(module_name(path, root) for path in sources(root))
    return {
        f"{path.relative_to(root)} imports {imported}"
        for path in sources(root)
        for name in imported_names(path, root)
        if (imported := as_test_module(name, modules)) is not None
    }


def test_no_module_imports_a_test_module() -> None:
    found = imports_of_test_modules()
    assert sorted(found) == [], (
        "move what both need into conftest.py (fixtures), tests/factories.py or a helper module"
    )


@cache
def private_attributes() -> frozenset[str]:
    """The private names of the boto3 and botocore objects code gets hold of: sessions, a
    client, its meta, its events, its model, the loader. Made offline; no call is sent."""
    core = botocore.session.Session()
    session = boto3.session.Session(botocore_session=core, region_name="us-east-1")
    client = session.client("sqs", aws_access_key_id="x", aws_secret_access_key="x")
    objects = [
        session,
        core,
        client,
        client.meta,
        client.meta.events,
        client.meta.service_model,
        core.get_component("data_loader"),
    ]
    return frozenset(
        name
        for thing in objects
        for name in dir(thing)
        if name.startswith("_") and not name.startswith("__")
    )


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path) -> Iterator[str]:
    """Private boto3/botocore names in `path`: imported, read from the modules, or read from
    their objects (any receiver but self and cls, which are the project's own)."""
    tree = syntax(path)
    library_names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] not in LIBRARIES:
                    continue
                library_names.add(alias.asname or parts[0])
                if any(is_private(part) for part in parts):
                    yield f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            parts = node.module.split(".")
            if parts[0] not in LIBRARIES:
                continue
            for alias in node.names:
                if any(is_private(part) for part in [*parts, alias.name]):
                    yield f"from {node.module} import {alias.name}"
                else:
                    library_names.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not is_private(node.attr):
            continue
        receiver = node.value.id if isinstance(node.value, ast.Name) else None
        if receiver in library_names:
            yield ast.unparse(node)  # boto3._get_default_session
        elif node.attr in private_attributes() and receiver not in {"self", "cls"}:
            yield ast.unparse(node)  # session._session, client._endpoint


def test_no_code_uses_a_private_boto3_or_botocore_name() -> None:
    found = {f"{path.relative_to(ROOT)}: {use}" for path in sources() for use in private_uses(path)}
    assert sorted(found) == [], (
        "use the public API: boto3.DEFAULT_SESSION or a session you own, client.meta, botocore's"
        " documented classes"
    )


def test_the_rules_see_what_they_forbid(tmp_path: Path) -> None:
    """The scans find a planted violation of each rule, in a tree of their own."""
    for name in ("tests/integration/test_pixel_gate.py", "tests/devtools/ops/test_ops_dlq.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("STAGE = 'dev'\n", encoding="utf-8")
    planted = tmp_path / "tests" / "devtools" / "helpers.py"
    planted.write_text(
        "import boto3\n"
        "from tests.integration import test_pixel_gate\n"
        "def f(client, journal):\n"
        "    from .ops.test_ops_dlq import STAGE\n"
        "    return boto3._get_default_session(), client._endpoint, journal._append\n",
        encoding="utf-8",
    )
    assert imports_of_test_modules(tmp_path) == {
        "tests/devtools/helpers.py imports tests.integration.test_pixel_gate",
        "tests/devtools/helpers.py imports tests.devtools.ops.test_ops_dlq",
    }
    assert set(private_uses(planted)) == {"boto3._get_default_session", "client._endpoint"}
