"""The lock files: every package, transitive ones too, pinned with the hashes of its files.

Three plain files say what each set needs, pinned, and stay what pip and Chalice read:
`requirements.txt` (the Lambda bundle), `requirements-local.txt` (it, plus the local stack)
and `requirements-dev.txt` (all that, plus the test toolchain). Beside each, a lock holds
its whole closure with hashes: `requirements.lock`, `requirements-local.lock`,
`requirements-dev.lock`. The Makefile installs from the locks with hashes required, and the
deploy tools hand Chalice `requirements.lock` as pip's constraints (PIP_CONSTRAINT), so the
bundle holds the locked versions and every file it downloads is checked against the lock.

`.venv/bin/python -m devtools.locks` (`make lock`) writes the locks with uv: the dev set first, then
the two smaller sets constrained to it, so a package has one version in all three. The
platform is Lambda's, Linux x86-64 with glibc 2.17 (manylinux2014) and Python 3.11, which
this machine and CI match; `--generate-hashes` records every file of each pinned version, so
whichever wheel pip or uv picks here, on CI or for Lambda, its hash is in the lock.
`.venv/bin/python -m devtools.locks --check` says where a plain file and its lock disagree.

Standard library only: the Makefile runs it before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
PYTHON_VERSION: Final = "3.11"  # the functions' runtime (.chalice/config.json: python3.11)
PLATFORM: Final = "x86_64-manylinux_2_17"


@dataclass(frozen=True)
class LockPair:
    """A plain requirements file and the lock of its whole closure."""

    plain: str
    lock: str


# Largest set first: the others are resolved within it.
PAIRS: Final = (
    LockPair("requirements-dev.txt", "requirements-dev.lock"),
    LockPair("requirements-local.txt", "requirements-local.lock"),
    LockPair("requirements.txt", "requirements.lock"),
)
_PIN: Final = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
_HASH: Final = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def canonical(name: str) -> str:
    """A distribution name as indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def plain_pins(path: Path) -> dict[str, str]:
    """name → version of every `name==version` in a plain file and the files it includes
    (`-r`); anything else (a range, an option) is not a pin and is refused."""
    pins: dict[str, str] = {}
    for line in _lines(path):
        if line.startswith(("-r ", "--requirement ")):
            pins.update(plain_pins(path.parent / line.split(maxsplit=1)[1]))
            continue
        found = _PIN.fullmatch(line)
        if found is None:
            raise ValueError(f"{path.name}: {line!r} is not a pin (name==version)")
        pins[canonical(found.group(1))] = found.group(3)
    return pins


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) of every entry of a lock."""
    entries: dict[str, tuple[str, int]] = {}
    name = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line.startswith(" "):
            found = _PIN.match(stripped)
            if found is None:
                raise ValueError(f"{path.name}: {stripped!r} is not a pinned entry")
            name = canonical(found.group(1))
            entries[name] = (found.group(3), 0)
        if name:
            version, hashes = entries[name]
            entries[name] = (version, hashes + len(_HASH.findall(stripped)))
    return entries


def disagreements(root: Path = ROOT) -> list[str]:
    """Every way the plain files and the locks disagree; empty when they agree: each pin of
    a plain file is in its lock at that version, every locked package has hashes, and a
    package has one version in every lock."""
    problems: list[str] = []
    versions: dict[str, tuple[str, str]] = {}
    for pair in PAIRS:
        lock_path = root / pair.lock
        if not lock_path.exists():
            problems.append(f"{pair.lock} is missing: run make lock")
            continue
        lock = locked(lock_path)
        for name, version in sorted(plain_pins(root / pair.plain).items()):
            if name not in lock:
                problems.append(f"{pair.plain} pins {name}=={version}; {pair.lock} lacks it")
            elif lock[name][0] != version:
                problems.append(
                    f"{pair.plain} pins {name}=={version}; {pair.lock} has {lock[name][0]}"
                )
        for name, (version, hashes) in sorted(lock.items()):
            if not hashes:
                problems.append(f"{pair.lock}: {name}=={version} has no hash")
            seen = versions.setdefault(name, (version, pair.lock))
            if seen[0] != version:
                problems.append(f"{name} is {seen[0]} in {seen[1]} but {version} in {pair.lock}")
    if problems:
        problems.append("run make lock (after changing a pin) to write the locks again")
    return problems


def chalice_environment(root: Path, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment to run `chalice package` / `chalice deploy` in: the pip that Chalice
    runs to build the bundle is constrained to requirements.lock (PIP_CONSTRAINT), so the
    transitive packages are the locked versions and each file's hash is checked, the
    manylinux wheels Chalice fetches for Lambda included."""
    lock = root / "requirements.lock"
    if not lock.exists():
        raise SystemExit(f"{lock} is missing: run make lock")
    return {**base, "PIP_CONSTRAINT": str(lock)}


def write_locks(root: Path = ROOT, uv: str | None = None) -> None:
    """The three locks, written with uv from the plain files as they are now."""
    uv = uv or shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise SystemExit("make lock needs uv: make venv installs it into .venv")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for pair in PAIRS:
            shutil.copy(root / pair.plain, work / pair.plain)
            if (root / pair.lock).exists():  # uv keeps its versions where it can
                shutil.copy(root / pair.lock, work / pair.lock)
        constraint: list[str] = []
        for pair in PAIRS:
            command = [
                *(uv, "pip", "compile", "--quiet", "--no-header", "--generate-hashes"),
                *("--python-version", PYTHON_VERSION, "--python-platform", PLATFORM),
                *(pair.plain, *constraint, "--output-file", pair.lock),
            ]
            subprocess.run(command, cwd=work, check=True)
            text = (work / pair.lock).read_text()
            (root / pair.lock).write_text(_header(pair) + text)
            shutil.copy(root / pair.lock, work / pair.lock)
            constraint = ["--constraint", PAIRS[0].lock]


def _header(pair: LockPair) -> str:
    return (
        f"# {pair.plain} and everything it needs, pinned with the hashes of their files\n"
        f"# (Python {PYTHON_VERSION}, {PLATFORM}). Written by `make lock`"
        " (devtools/locks.py): do not edit.\n"
    )


def _lines(path: Path) -> Iterator[str]:
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            yield line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=".venv/bin/python -m devtools.locks", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="only say where the plain files and locks disagree"
    )
    args = parser.parse_args(argv)
    if not args.check:
        write_locks()
    problems = disagreements()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
