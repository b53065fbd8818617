"""Every package pinned with hashes (devtools/locks.py): the plain requirements files and
their locks agree, the locks nest with one version per package, the check names any
disagreement, and the Lambda bundle Chalice builds holds exactly the locked versions."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest

from devtools.locks import PAIRS, ROOT, canonical, chalice_environment, disagreements, locked
from tests.devtools.deploy_fixtures import Packaged


def copy_requirements(destination: Path) -> Path:
    for pair in PAIRS:
        shutil.copy(ROOT / pair.plain, destination / pair.plain)
        shutil.copy(ROOT / pair.lock, destination / pair.lock)
    return destination


def test_the_plain_files_and_their_locks_agree() -> None:
    assert disagreements() == []


def test_the_locks_nest_every_package_with_its_hashes() -> None:
    lambda_lock = locked(ROOT / "requirements.lock")
    local_lock = locked(ROOT / "requirements-local.lock")
    dev_lock = locked(ROOT / "requirements-dev.lock")
    assert lambda_lock.keys() <= local_lock.keys() <= dev_lock.keys()
    for name in ("cryptography", "urllib3", "botocore", "requests", "werkzeug"):
        assert name in dev_lock, name  # transitive packages, pinned too
    assert {"cryptography", "urllib3", "botocore", "cffi"} <= lambda_lock.keys()
    assert all(hashes for _, hashes in dev_lock.values())
    # Every file of a version is hashed: cryptography has a wheel per platform.
    assert dev_lock["cryptography"][1] > 10


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("boto3==1.44.8", "boto3==1.44.9", "requirements.txt pins boto3==1.44.9; requirements"),
        (
            "PyJWT[crypto]==2.15.1",
            "PyJWT[crypto]==2.15.1\nidna==3.1",
            "requirements.txt pins idna==3.1; requirements.lock lacks it",
        ),
    ],
    ids=["another-version", "missing"],
)
def test_a_plain_pin_the_lock_does_not_hold_is_named(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    root = copy_requirements(tmp_path)
    plain = root / "requirements.txt"
    assert old in plain.read_text()
    plain.write_text(plain.read_text().replace(old, new))
    problems = disagreements(root)
    assert any(line.startswith(problem) for line in problems), problems
    assert problems[-1] == "run make lock (after changing a pin) to write the locks again"


def test_a_lock_entry_without_a_hash_or_at_two_versions_is_named(tmp_path: Path) -> None:
    root = copy_requirements(tmp_path)
    lock = root / "requirements.lock"
    text = re.sub(r"(six==1\.17\.0) \\\n(\s+--hash=\S+( \\)?\n)+", r"\1\n", lock.read_text())
    lock.write_text(text.replace("urllib3==", "urllib3==0.0.0+", 1))
    problems = disagreements(root)
    assert "requirements.lock: six==1.17.0 has no hash" in problems
    assert any(line.startswith("urllib3 is ") for line in problems), problems


def test_chalice_builds_the_bundle_within_the_lock(tmp_path: Path) -> None:
    environment = chalice_environment(ROOT, {})
    assert environment == {"PIP_CONSTRAINT": str(ROOT / "requirements.lock")}
    with pytest.raises(SystemExit, match=r"requirements\.lock is missing: run make lock"):
        chalice_environment(tmp_path, {})


def test_the_lambda_bundle_holds_exactly_the_locked_versions(packaged: Packaged) -> None:
    """`chalice package` (make package, make deploy) with the lock as pip's constraints:
    its downloads were checked against the hashes, and its versions are the locked ones."""
    with zipfile.ZipFile(packaged.result.package_dir / "deployment.zip") as bundle:
        found = {
            canonical(name): version
            for name, version in (
                Path(entry).parts[0].removesuffix(".dist-info").rsplit("-", 1)
                for entry in bundle.namelist()
                if Path(entry).parts[0].endswith(".dist-info")
            )
        }
    lock = {name: version for name, (version, _) in locked(ROOT / "requirements.lock").items()}
    assert found == lock
