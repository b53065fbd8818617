"""The README stays a three-minute read, and every document is reachable from it: what grows
goes into docs/ (settings into docs/settings.md), and a new document gets a line in the
README's "what to read next"."""

from __future__ import annotations

import re

from tests.docs.markdown import DOCS, ROOT

README = ROOT / "README.md"
MAX_LINES = 200


def test_the_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_every_document_is_linked_from_the_readme() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)", README.read_text()))
    documents = {path.relative_to(ROOT).as_posix() for path in DOCS.rglob("*.md")}
    assert documents - linked == set(), "documents the README does not lead to"
