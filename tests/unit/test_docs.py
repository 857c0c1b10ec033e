"""The docs against the code: the settings reference is what scripts/settings_doc.py renders
from the settings classes, the README stays an index, and every relative link resolves (to a
file, and to a heading for ``#anchor`` links into Markdown)."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.settings_doc import CONFIGURATION, render_reference, rewrite
from tests.utils.paths import REPO

README = REPO / "README.md"
README_MAX_LINES = 260
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+).+?\1")
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower-case, punctuation other than hyphens and
    underscores dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page (a repeated heading gets -1, -2, ...)."""
    found: set[str] = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(1))
        anchor, number = base, 0
        while anchor in found:
            number += 1
            anchor = f"{base}-{number}"
        found.add(anchor)
    return found


def links(page: Path) -> list[str]:
    """The link targets of a Markdown page, outside code blocks and code spans."""
    targets: list[str] = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        reference = REFERENCE_LINK.match(line)
        if reference is not None:
            targets.append(reference.group(1))
            continue
        targets += INLINE_LINK.findall(CODE_SPAN.sub("", line))
    return targets


def broken_link(page: Path, target: str) -> str | None:
    """Why a relative link of ``page`` does not resolve, or None if it does (or is not
    relative: a URL, a mail address)."""
    if SCHEME.match(target) or target.startswith("//"):
        return None
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    if not resolved.exists():
        return f"{target}: no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"{target}: no heading #{anchor} in {resolved.relative_to(REPO)}"
    return None


def test_slug_follows_github() -> None:
    assert slug("Modes, scores and highlights") == "modes-scores-and-highlights"
    assert slug("The `milvus` marker and its fixture") == "the-milvus-marker-and-its-fixture"
    assert slug("A million vectors (`python -m bench --scale 1000000`)") == (
        "a-million-vectors-python--m-bench---scale-1000000"
    )
    assert slug("What `min_score` means per mode") == "what-min_score-means-per-mode"


def test_the_settings_reference_is_generated_from_the_code() -> None:
    committed = CONFIGURATION.read_text(encoding="utf-8")
    assert committed == rewrite(committed, render_reference()), (
        "docs/configuration.md differs from the settings classes: "
        "run .venv/bin/python scripts/settings_doc.py"
    )


def test_the_readme_is_an_index() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; move details into docs/ (at most {README_MAX_LINES})"
    )


def test_relative_links_resolve() -> None:
    broken = [
        f"{page.relative_to(REPO)}: {problem}"
        for page in PAGES
        for target in links(page)
        if (problem := broken_link(page, target)) is not None
    ]
    assert not broken, "\n".join(broken)
