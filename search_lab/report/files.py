"""Where findings reports live and how to read one back (no plotting imports: the app uses it).

``python -m search_lab.report`` writes each report into ``<outputs>/report/<time>/``; the
Findings page shows the newest complete one (a folder is complete once renamed into place).
"""

from __future__ import annotations

import re
from pathlib import Path

REPORT_DIR = "report"
MD_FILE = "report.md"
HTML_FILE = "report.html"
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d$")
_IMAGE = re.compile(r"^!\[(?P<title>[^\]]*)\]\((?P<name>[\w.-]+\.png)\)$")


def latest_report(outputs: Path) -> Path | None:
    """The newest ``<outputs>/report/<time>/`` folder holding a ``report.md``, or None."""
    parent = Path(outputs) / REPORT_DIR
    if not parent.is_dir():
        return None
    done = [p for p in parent.iterdir() if _STAMP.match(p.name) and (p / MD_FILE).is_file()]
    return max(done, key=lambda p: p.name) if done else None


def blocks(markdown: str) -> list[tuple[str, str]]:
    """The report's Markdown cut into ``("text", markdown)`` and ``("image", name|title)`` parts.

    Only images naming a plain ``*.png`` file beside the report are picked out, so a page can
    show them from that folder and nothing else.
    """
    out: list[tuple[str, str]] = []
    text: list[str] = []
    for line in markdown.splitlines():
        match = _IMAGE.match(line.strip())
        if match is None:
            text.append(line)
            continue
        if "".join(text).strip():
            out.append(("text", "\n".join(text)))
        text = []
        out.append(("image", f"{match['name']}|{match['title']}"))
    if "".join(text).strip():
        out.append(("text", "\n".join(text)))
    return out
