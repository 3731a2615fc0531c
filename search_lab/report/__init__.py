"""The findings report (``python -m search_lab.report``): an entry layer over the core.

:mod:`~search_lab.report.command` runs (or reuses) the evaluations each of the talk's four
questions needs (:mod:`~search_lab.report.plan`, :mod:`~search_lab.report.runs`), the section
modules turn them into tables and charts, and :mod:`~search_lab.report.render` writes HTML and
Markdown.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "files": ["HTML_FILE", "MD_FILE", "blocks", "latest_report"],
    },
)
