"""Every relative link in README.md and docs/ leads somewhere: the file exists and, when the
link names a section, so does the heading (GitHub's anchor for it). Sections move between
documents; a link left behind fails here instead of in a reader's browser."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from tests.docs.markdown import DOCS, ROOT

DOCUMENTS = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    text = _FENCE.sub("", path.read_text())
    return frozenset(anchor(heading) for heading in _HEADING.findall(text))


def links(path: Path) -> list[str]:
    text = _FENCE.sub("", path.read_text())
    return [
        target
        for target in _LINK.findall(text)
        if not re.match(r"[a-z]+:", target)  # http:, https:, mailto:
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    broken: list[str] = []
    for target in links(document):
        file, _, section = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif section and path.suffix == ".md" and section not in anchors(path):
            broken.append(f"{target}: no heading with that anchor in {path.name}")
    assert not broken, broken
