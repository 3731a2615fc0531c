"""mAP against collection size: the ``distractors`` section of metrics.json as a table and chart.

``evaluate`` with ``eval.distractor_counts`` writes ``distractors.md`` (a Markdown table) and
``distractors.png`` (mAP with its 95% interval against the number of indexed images) beside
``metrics.json``; the app's Experiments page draws the same rows (:func:`frame`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search_lab.core import METRICS_FILE, read_json_object, write_text

log = logging.getLogger(__name__)

TABLE_FILE = "distractors.md"
CHART_FILE = "distractors.png"
FILES = (TABLE_FILE, CHART_FILE)  # what a run with distractors adds to its folder
COLUMNS = ("distractors", "images", "mAP", "ci_low", "ci_high", "p_at_1")


def frame(section: Mapping[str, Any]) -> pd.DataFrame:
    """One row per distractor count: count, images indexed, mAP, its 95% interval, P@1."""
    rows = []
    for row in section.get("rows", []):
        low, high = row.get("map_ci95") or (None, None)
        p1 = row.get("precision_at", {}).get("1")
        rows.append((row["count"], row["n_images"], row["map"], low, high, p1))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def table(section: Mapping[str, Any]) -> str:
    """Markdown table of :func:`frame` with a line naming the folder and the seed."""
    lines = [
        f"Distractors from {section['folder']} (seed {section['seed']}, "
        f"{section['indexed']:,} indexed at most)",
        "",
        "| distractors | images indexed | mAP [95% CI] | P@1 |",
        "|--:|--:|--:|--:|",
    ]
    for r in frame(section).itertuples(index=False):
        ci = f" [{r.ci_low:.3f}, {r.ci_high:.3f}]" if pd.notna(r.ci_low) else ""
        p1 = f"{r.p_at_1:.4f}" if pd.notna(r.p_at_1) else ""
        lines.append(f"| {r.distractors:,} | {r.images:,} | {r.mAP:.4f}{ci} | {p1} |")
    return "\n".join(lines) + "\n"


def summary_lines(section: Mapping[str, Any]) -> list[str]:
    """Terminal lines: ``distractors   0: mAP 0.5686 [0.515, 0.626] (648 images)`` per count."""
    out = []
    for r in frame(section).itertuples(index=False):
        ci = f" [{r.ci_low:.3f}, {r.ci_high:.3f}]" if pd.notna(r.ci_low) else ""
        out.append(f"distractors {r.distractors:>8,}: mAP {r.mAP:.4f}{ci}  ({r.images:,} images)")
    return out


def chart(sections: Sequence[tuple[str, Mapping[str, Any]]], path: Path) -> Path:
    """PNG of mAP (95% interval as error bars) against images indexed, one line per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, section in sections:
        df = frame(section)
        err = [df["mAP"] - df["ci_low"], df["ci_high"] - df["mAP"]]
        ax.errorbar(df["images"], df["mAP"], yerr=err, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("images indexed (dataset + distractors)")
    ax.set_ylabel("mAP (95% interval)")
    ax.grid(True, alpha=0.3)
    if len(sections) > 1:
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.part.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def write(out_dir: Path, section: Mapping[str, Any], label: str) -> None:
    """Write :data:`TABLE_FILE` and :data:`CHART_FILE` of one run into ``out_dir``."""
    write_text(out_dir / TABLE_FILE, table(section))
    chart([(label, section)], out_dir / CHART_FILE)


def curves(runs: pd.DataFrame, label: Callable[[Mapping[str, Any]], str]) -> pd.DataFrame:
    """:func:`frame` of every run in ``runs`` (its ``run`` folders) that measured distractors.

    One long table with a ``run`` column holding ``label(row)``; runs without a
    ``distractors`` section, or whose metrics file cannot be read, are left out.
    """
    parts = []
    for row in runs.to_dict("records"):
        try:
            section = read_json_object(Path(str(row["run"])) / METRICS_FILE).get("distractors")
            part = frame(section) if isinstance(section, Mapping) else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("%s: distractors section unreadable (%s)", row["run"], err)
            part = None
        if part is not None and not part.empty:
            parts.append(part.assign(run=label(row)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
