"""The findings report's pieces (sections, tables, charts) and their Markdown and HTML forms.

The HTML is self-contained: styles inline, charts as base64 PNG, no script and no link to
fetch. The Markdown refers to the same charts as PNG files beside it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


@dataclass
class Table:
    """A table of formatted cells; ``columns`` name them, ``note`` follows it in small print."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Chart:
    """A chart saved as ``<name>.png`` beside the report."""

    name: str
    title: str
    png: bytes


@dataclass
class Section:
    """One question: its plain-words answer, the tables and charts behind it, the commands."""

    heading: str
    answer: list[str]
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


def _png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes (and closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    intervals: Sequence[tuple[float, float]],
    groups: Sequence[str],
    xlabel: str,
) -> bytes:
    """Horizontal bars with 95% interval whiskers, one colour per group, grouped together."""
    order = list(dict.fromkeys(groups))
    rows = sorted(range(len(labels)), key=lambda i: order.index(groups[i]))  # stable
    labels, values = [labels[i] for i in rows], [values[i] for i in rows]
    intervals, groups = [intervals[i] for i in rows], [groups[i] for i in rows]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(labels) + 1.2))
    ys = range(len(labels))[::-1]
    colours = [COLOURS[order.index(g) % len(COLOURS)] for g in groups]
    err = [[v - lo for v, (lo, _) in zip(values, intervals, strict=True)]]
    err.append([hi - v for v, (_, hi) in zip(values, intervals, strict=True)])
    ax.barh(list(ys), values, xerr=err, color=colours, capsize=2, ecolor="#333")
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.set_xlabel(xlabel)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=COLOURS[i % len(COLOURS)]) for i in range(len(order))
    ]
    ax.legend(handles, order, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def line_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    *,
    logx: bool = False,
    logy: bool = False,
    bands: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> bytes:
    """Lines with markers (one per series), optional shaded 95% bands."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, (name, (xs, ys)) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        ax.plot(xs, ys, marker="o", label=name, color=colour)
        if bands and name in bands:
            ax.fill_between(xs, *bands[name], color=colour, alpha=0.15)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _md_table(table: Table) -> list[str]:
    """A Markdown table (pipes in cells escaped)."""
    cells = [[c.replace("|", "\\|") for c in row] for row in table.rows]
    lines = [f"**{table.title}**", "", "| " + " | ".join(table.columns) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return [*lines, *(["", f"*{table.note}*"] if table.note else []), ""]


def markdown(title: str, preamble: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole report as Markdown; charts as ``![title](name.png)``."""
    lines = [f"# {title}", ""]
    for para in preamble:
        lines += [para, ""]
    for section in sections:
        lines += [f"## {section.heading}", ""]
        for para in section.answer:
            lines += [para, ""]
        for table in section.tables:
            lines += _md_table(table)
        for chart in section.charts:
            lines += [f"![{chart.title}]({chart.name}.png)", ""]
        if section.commands:
            lines += ["Reproduce:", "", "```bash", *section.commands, "```", ""]
    return "\n".join(lines)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45;color:#222}table{border-collapse:collapse;margin:.5rem 0 1rem;"
    "display:block;overflow-x:auto;"
    "font-size:.85rem}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
    "td{font-variant-numeric:tabular-nums}pre{background:#f4f4f4;padding:.6rem;overflow-x:auto;"
    "font-size:.8rem}img{max-width:100%}.note{font-size:.8rem;color:#555}"
)


def _html_table(table: Table) -> str:
    """An escaped HTML table with its caption and note."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(c.strip('`'))}</td>" for c in row) + "</tr>"
        for row in table.rows
    )
    note = f'<p class="note">{esc(table.note)}</p>' if table.note else ""
    return f"<p><b>{esc(table.title)}</b></p><table><tr>{head}</tr>{body}</table>{note}"


def _inline(text: str) -> str:
    """Escaped paragraph text with ``code`` and **bold** spans."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def html_page(title: str, preamble: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole report as one self-contained HTML page (charts inline as base64 PNG)."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        *[f"<p>{_inline(p)}</p>" for p in preamble],
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        parts += [f"<p>{_inline(p)}</p>" for p in section.answer]
        parts += [_html_table(t) for t in section.tables]
        for chart in section.charts:
            data = base64.b64encode(chart.png).decode()
            alt = html.escape(chart.title)
            parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">')
            parts.append(f"<figcaption class='note'>{alt}</figcaption></figure>")
        if section.commands:
            parts.append(
                "<p>Reproduce:</p><pre>" + html.escape("\n".join(section.commands)) + "</pre>"
            )
    return "".join(parts) + "</body></html>\n"
