"""The findings report (``python -m search_lab.report``): an entry layer over the core.

:mod:`~search_lab.report.command` runs (or reuses) the evaluations each of the talk's four
questions needs (:mod:`~search_lab.report.plan`, :mod:`~search_lab.report.runs`), the section
modules turn them into tables and charts, and :mod:`~search_lab.report.render` writes HTML and
Markdown.
"""
