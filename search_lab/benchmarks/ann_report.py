"""The Markdown report and the recall-vs-QPS chart of ``python -m search_lab.bench_ann``.

Settings are picked by :func:`search_lab.evaluation.best_at`, which the project report uses too.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from search_lab.core import write_bytes, write_text
from search_lab.evaluation import best_at

EXACT = "exact (numpy)"
ANNOY = "annoy 50 trees"


def points(run: dict[str, Any], k: int) -> list[tuple[str, float, float]]:
    """(method, recall@k, single-query QPS) of every setting of a run."""
    return [
        (m["method"], s[f"recall_at_{k}"], s["qps"]) for m in run["methods"] for s in m["settings"]
    ]


def pareto(pts: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Points no other point beats on both recall and QPS, by increasing recall."""
    front = [p for p in pts if not any(q[1] >= p[1] and q[2] >= p[2] and q != p for q in pts)]
    return sorted(front, key=lambda p: p[1])


def _setting(m: dict[str, Any], s: dict[str, Any]) -> str:
    return f"{m['knob']}={s['value']}" if m["knob"] else ""


def run_table(run: dict[str, Any], k: int) -> list[str]:
    """One Markdown table: every build and query setting of a run, Pareto points in bold."""
    front = {(p[0], p[1], p[2]) for p in pareto(points(run, k))}
    lines = [
        f"| method | setting | build s | index MB | build peak RSS MB | queries/s single "
        f"| p50 ms | queries/s batched | recall@{k} |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for m in run["methods"]:
        for s in m["settings"]:
            star = (m["method"], s[f"recall_at_{k}"], s["qps"]) in front
            name = f"**{m['method']}**" if star else m["method"]
            lines.append(
                f"| {name} | {_setting(m, s)} | {m['build_s']:.1f} | {m['index_mb']:.0f} "
                f"| {m['build_peak_rss_mb']:.0f} | {s['qps']:,.0f} | {s['ms_p50']:.3f} "
                f"| {s['batched_qps']:,.0f} | {s[f'recall_at_{k}']:.3f} |"
            )
    for label, why in run.get("skipped", {}).items():
        lines.append(f"| {label} | left out: {why} | | | | | | | |")
    return lines


def versus_annoy(run: dict[str, Any], k: int, min_recall: float = 0.9) -> list[str]:
    """Each method's best single-query QPS at recall@k >= ``min_recall`` and its ratio to Annoy."""
    best = best_at(run, k, min_recall)
    annoy = best.get(ANNOY, {}).get("qps")
    lines = [
        f"Best single-query QPS at recall@{k} ≥ {min_recall}:",
        "",
        "| method | setting | queries/s | × Annoy | recall |",
        "|---|---|--:|--:|--:|",
    ]
    for method, s in sorted(best.items(), key=lambda kv: -kv[1]["qps"]):
        ratio = f"{s['qps'] / annoy:.2f}" if annoy else "n/a"
        setting = f"{s['knob']}={s['value']}" if s["knob"] else ""
        lines.append(
            f"| {method} | {setting} | {s['qps']:,.0f} | {ratio} | {s[f'recall_at_{k}']:.3f} |"
        )
    missing = sorted({m["method"] for m in run["methods"]} - set(best))
    if missing:
        lines += ["", f"No setting reaches recall@{k} {min_recall}: {', '.join(missing)}."]
    return lines


def target(run: dict[str, Any], k: int, min_recall: float = 0.95) -> str:
    """The fastest method at recall@k >= ``min_recall`` and its speed-up over exhaustive search."""
    best = {m: s for m, s in best_at(run, k, min_recall).items() if m != EXACT}
    exact = best_at(run, k, 0.0).get(EXACT)
    flat = best_at(run, k, 0.0).get("faiss Flat")
    if not best or exact is None:
        return f"No approximate method reaches recall@{k} ≥ {min_recall} on {run['name']}."
    method, s = max(best.items(), key=lambda kv: kv[1]["qps"])
    setting = f" ({s['knob']}={s['value']})" if s["knob"] else ""
    flat_text = (
        f", {s['qps'] / flat['qps']:.1f}× Faiss Flat single-query ({flat['qps']:,.0f} q/s)"
        if flat
        else ""
    )
    speedup = s["qps"] / exact["qps"]
    return (
        f"On {run['name']}, the fastest method at recall@{k} ≥ {min_recall} is **{method}"
        f"{setting}**: {s['qps']:,.0f} queries/s one at a time (recall {s[f'recall_at_{k}']:.3f}),"
        f" **{speedup:.0f}×** exhaustive numpy search one query at a time (ExactIndex, "
        f"{exact['qps']:.1f} q/s){flat_text}; target ≥ 100×: "
        f"**{'met' if speedup >= 100 else 'NOT met'}**."
    )


def dims_table(report: dict[str, Any], k: int) -> list[str]:
    """Recall and single-query QPS of each method's one setting at every dimension."""
    runs = report["dims"]
    if not runs:
        return []
    methods = [m["method"] for m in runs[0]["methods"]]
    head = " | ".join(f"{r['dim']}-d" for r in runs)
    lines = [f"| method (recall@{k} / queries/s) | {head} |", "|---|" + "--:|" * len(runs)]
    for name in methods:
        cells = []
        for r in runs:
            m = next(x for x in r["methods"] if x["method"] == name)
            s = m["settings"][0]
            cells.append(f"{s[f'recall_at_{k}']:.3f} / {s['qps']:,.0f}")
        lines.append(f"| {name} {_setting(m, m['settings'][0])} | {' | '.join(cells)} |")
    return lines


def markdown(report: dict[str, Any], chart_name: str) -> str:
    """The whole report: machine, method, one section per data set, dimensions, verdicts."""
    m, k = report["machine"], report["config"]["k"]
    libs = ", ".join(f"{n} {m.get(n)}" for n in ("annoy", "scipy", "hnswlib", "pynndescent"))
    lines = [
        "# Search methods side by side",
        "",
        f"Command: `{report['command']}` — total {report['elapsed_s']:.0f} s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, load average "
        f"{m['load_avg_1m_at_start']} at start and {m.get('load_avg_1m_at_end')} at the end "
        f"(the CPU is shared); Python {m['python']}, numpy {m['numpy']}, {libs}, faiss-cpu "
        f"{m.get('faiss-cpu')}. {report.get('note', '')}".rstrip(),
        "",
        "Euclidean distance; recall@10 against ExactIndex (the project's exact search) on the "
        "same vectors. Builds use every core. *queries/s single*: one query per call on one "
        "thread (the app's case), 1000 / median latency in ms, robust to the shared CPU's "
        "spikes; *batched*: all queries in one call on every core (Annoy has "
        "no batch call: its batch is a loop). Index MB: the saved folder on disk. Build peak "
        "RSS: most resident memory the build added (kernel high-water mark). Exact and kd-tree "
        "are timed (single and batched) and scored on the first 20 queries only. Bold rows "
        "are on the Pareto front (no other setting has both higher recall and more queries/s).",
        "",
        f"![recall against queries per second]({chart_name})",
        "",
    ]
    for run in report["runs"]:
        lines += [
            f"## {run['name']} ({run['n_queries']} queries)",
            "",
            *run_table(run, k),
            "",
            *versus_annoy(run, k),
            "",
            target(run, k),
            "",
        ]
    if report["dims"]:
        lines += [
            "## Effect of dimension",
            "",
            f"Clustered mixtures of {report['dims'][0]['n_items']:,} items at each dimension, "
            "one setting per method:",
            "",
            *dims_table(report, k),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def chart(report: dict[str, Any]) -> bytes:
    """Recall@k against single-query QPS (log scale), one panel per data set, Pareto front."""
    k, runs = report["config"]["k"], report["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 4.4), squeeze=False)
    names = sorted({m["method"] for r in runs for m in r["methods"]})
    colours = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    for ax, run in zip(axes[0], runs, strict=True):
        for m in run["methods"]:
            xs = [s[f"recall_at_{k}"] for s in m["settings"]]
            ys = [s["qps"] for s in m["settings"]]
            ax.plot(xs, ys, "o-", color=colours[m["method"]], label=m["method"], ms=4, lw=1)
        front = pareto(points(run, k))
        ax.plot([p[1] for p in front], [p[2] for p in front], "k--", lw=1, label="Pareto front")
        ax.scatter(
            [p[1] for p in front],
            [p[2] for p in front],
            s=70,
            facecolors="none",
            edgecolors="black",
            zorder=3,
        )
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@{k}")
        ax.set_ylabel("queries/s, one query at a time")
        ax.set_title(run["name"], fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def write_reports(report: dict[str, Any], out: Path) -> None:
    """Markdown beside the JSON (``.md``) and the chart (``.png``)."""
    png = out.with_suffix(".png")
    write_bytes(png, chart(report))
    write_text(out.with_suffix(".md"), markdown(report, png.name))
