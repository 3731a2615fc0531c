"""Choosing among search settings by recall and speed (the ANN benchmark's finished runs).

A run is the JSON ``python -m search_lab.bench_ann`` writes: per method, its settings with
``recall_at_<k>`` and single-query ``qps``. Both that benchmark's report and the findings
report pick settings this way.
"""

from __future__ import annotations

from typing import Any


def best_at(run: dict[str, Any], k: int, min_recall: float) -> dict[str, dict[str, Any]]:
    """Per method label, its fastest single-query setting with recall@k >= ``min_recall``."""
    best: dict[str, dict[str, Any]] = {}
    for m in run["methods"]:
        for s in m["settings"]:
            if s[f"recall_at_{k}"] >= min_recall and s["qps"] > best.get(m["method"], {}).get(
                "qps", 0.0
            ):
                best[m["method"]] = {"knob": m["knob"], **s}
    return best
