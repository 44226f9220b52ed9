"""README.md's headings as GitHub anchors them, for the runbook_url checks."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
# The README section whose alert-named subsections are the runbooks.
ALERTS_SECTION = "Alerts and the dashboard"


def headings(path=README):
    """(level, text) of every Markdown heading outside code fences."""
    fence = None
    for line in path.read_text(encoding="utf-8").splitlines():
        marker = re.match(r"^\s*(`{3,}|~{3,})", line)
        if marker:
            if fence is None:
                fence = marker.group(1)[0]
            elif marker.group(1)[0] == fence:
                fence = None
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if fence is None and heading:
            yield len(heading.group(1)), heading.group(2)


def slug(text):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path=README):
    """Every anchor of the page; repeated headings get -1, -2, ... as on GitHub."""
    seen = {}
    result = set()
    for _, text in headings(path):
        base = slug(text)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def alert_headings(path=README):
    """The headings inside ALERTS_SECTION that name an alert (Maskflow...)."""
    inside, level_of_section, names = False, 0, set()
    for level, text in headings(path):
        if text == ALERTS_SECTION:
            inside, level_of_section = True, level
        elif inside and level <= level_of_section:
            inside = False
        elif inside and re.fullmatch(r"Maskflow[A-Za-z0-9]+", text):
            names.add(text)
    return names
