"""A destination is named only in its own files, so adding one touches no one else's.

Every destination but the two the product names on purpose (customer-profiles, the default,
and pinpoint, the one it replaces) may be named, in any case, only in a file whose path
contains its name: its module or package, its double, its stand-in, its own tests. The rest
of the code reaches it through its plug-in (chalicelib/destinations/base.py).

Scope: every file in the repository (tracked, or new and not ignored), except:
- docs/ and README.md: prose for a person choosing where events go must name them;
- .chalice/config.json: a stage's own configuration, naming the resources of the
  destinations that stage may use;
- requirements*.txt and their locks: packages are named by their publishers
  (mypy-boto3-<service>).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from chalicelib.destinations import registry
from devtools.paths import ROOT

NAMED_ON_PURPOSE = frozenset({"customer-profiles", "pinpoint"})
OUT_OF_SCOPE = re.compile(
    r"^(docs/|README\.md$|\.chalice/config\.json$|requirements[^/]*\.(txt|lock)$)"
)


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [path for path in listed if not OUT_OF_SCOPE.match(path) and (ROOT / path).is_file()]


def mentions(name: str) -> dict[str, list[int]]:
    """Files outside `name`'s own that name it, with the lines that do."""
    word = re.compile(re.escape(name), re.IGNORECASE)
    found: dict[str, list[int]] = {}
    for path in repository_files():
        if name in path.lower():
            continue
        try:
            text = (ROOT / path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # not text
        lines = [n for n, line in enumerate(text.splitlines(), 1) if word.search(line)]
        if lines:
            found[path] = lines
    return found


@pytest.mark.parametrize(
    "name", [name for name in registry.known() if name not in NAMED_ON_PURPOSE]
)
def test_a_destination_is_named_only_in_its_own_files(name: str) -> None:
    assert mentions(name) == {}


def test_the_rule_finds_a_name_where_it_does_not_belong() -> None:
    """The check itself: this file names pinpoint, and its path does not."""
    assert "tests/test_destination_names.py" in mentions("pinpoint")
