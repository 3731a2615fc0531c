"""The Markdown report of the near-duplicates benchmark (:mod:`.duplicates`)."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def render(result: dict[str, Any]) -> str:
    """Tables: the sets, then precision/recall/F1 of the pairs per tool, then recall per edit."""
    tune, test = result["sets"]["tune"], result["sets"]["test"]
    edits = result["edits"]
    lines = [
        "# Near-duplicates on planted sets",
        "",
        f"`{result['command']}`",
        "",
        "| set | collection | originals | copies | unrelated | images | true pairs |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for side, s in (("tune (thresholds chosen here)", tune), ("test (reported)", test)):
        pairs = s["originals"] * (len(edits) + 1) * len(edits) // 2
        lines.append(
            f"| {side} | {s['collection']} | {s['originals']} | {s['copies']} | "
            f"{s['unrelated']} | {s['images']} | {pairs} |"
        )
    lines += [
        "",
        "Pairs scored from each tool's groups (connected components of its pairs), test set:",
        "",
        "| tool | threshold | F1 on tune | precision | recall | F1 | pairs found | features s "
        "| duplicates s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result["rows"]:
        t = row["test"]
        tune_f1 = "" if row["tune_f1"] is None else f"{row['tune_f1']:.3f}"
        lines.append(
            f"| {row['tool']} | {row['threshold']:.4g} ({row['unit']}) | {tune_f1} | "
            f"{t['precision']:.3f} | {t['recall']:.3f} | {t['f1']:.3f} | {t['pairs']} | "
            f"{row['features_s']:.2f} | {row['search_s']:.2f} |"
        )
    lines += ["", "Recall of original-copy pairs per edit (test set):", ""]
    lines += ["| tool | " + " | ".join(edits) + " |", "|---|" + "--:|" * len(edits)]
    for row in result["rows"]:
        per = row["test"]["recall_per_edit"]
        lines.append(f"| {row['tool']} | " + " | ".join(_pct(per[e]) for e in edits) + " |")
    lines += [
        "",
        "features s: extraction of the test set's features (search_lab: as measured when "
        "extracted, read from the feature cache on reruns) or PHash hashing; duplicates s: "
        "the duplicate search alone. Costs:",
        "",
    ]
    lines += [f"- {row['tool']}: {row['cost']}" for row in result["rows"]]
    m = result["machine"]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; load average {m['load_avg_at_start']} at the "
        f"start, {result['load_avg_at_end']} at the end; imagededup {m['imagededup']}. "
        "imagededup's CNN method needs a MobileNet download this machine cannot make: not run.",
    ]
    return "\n".join(lines) + "\n"
