"""The recipe spaces ``python -m search_lab.tune`` searches, and the experiment file it writes.

A space is a function of an Optuna trial returning Hydra overrides (``key -> value``); group
choices (``feature``, ``metric``) are overrides too. :func:`experiment_yaml` turns a winner's
overrides into a ``conf/experiment/tuned/<name>.yaml`` usable as ``+experiment=tuned/<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

Overrides = dict[str, Any]
GROUPS = ("feature", "metric", "index", "rerank")
"""Config groups: a choice among them becomes a ``defaults`` override in the experiment file."""


def _cnn(trial: Any) -> Overrides:
    """Deep recipes: GeM on EfficientNet-Lite0 (one or two scales), an optional colour block,
    optional shrunk whitening, optional similarity-weighted query expansion."""
    scales = trial.suggest_categorical("scales", ["1.0", "1.0,1.414"])
    hsv = trial.suggest_categorical("hsv_weight", [0.0, 0.3, 0.5, 0.7])
    out: Overrides = {}
    if hsv:
        out |= {
            "feature": "combo",
            "feature.parts": ["cnn", "hsv"],
            "feature.weights": [1.0, hsv],
            "feature.cnn.scales": [float(s) for s in scales.split(",")],
            "feature.hsv.bins": [16, 8, 4],
            "feature.hsv.layout": "grid2x2",
        }
    else:
        out |= {"feature": "cnn", "feature.scales": [float(s) for s in scales.split(",")]}
    whiten = trial.suggest_categorical("whiten", [False, True])
    expand = trial.suggest_categorical("expand", [0, 5, 10, 20, 40])
    if whiten and not expand:
        out |= {"post.pca_dim": 1024, "post.whiten": True, "post.shrinkage": 1.0}
    if expand:
        alpha = trial.suggest_categorical("expand_alpha", [1.0, 3.0])
        out |= {"post.expand": expand, "post.expand_alpha": alpha}
    return out


def _handcrafted(trial: Any) -> Overrides:
    """Colour histograms: bins, layout, square root, metric, query expansion (fast)."""
    bins = trial.suggest_categorical("bins", ["8,12,3", "16,8,4"])
    out: Overrides = {
        "feature": "hsv",
        "feature.bins": [int(b) for b in bins.split(",")],
        "feature.layout": trial.suggest_categorical("layout", ["global", "grid2x2"]),
        "metric": trial.suggest_categorical("metric", ["cosine", "manhattan"]),
    }
    expand = trial.suggest_categorical("expand", [0, 5, 10])
    if expand and out["metric"] == "cosine":
        out["post.expand"] = expand
    return out


SPACES: dict[str, Callable[[Any], Overrides]] = {"cnn": _cnn, "handcrafted": _handcrafted}


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """Hydra command-line overrides: ``key=value`` with lists as ``[a,b]``."""

    def shown(value: Any) -> str:
        if isinstance(value, list):
            return "[" + ",".join(shown(v) for v in value) + "]"
        return str(value).lower() if isinstance(value, bool) else str(value)

    return [f"{key}={shown(value)}" for key, value in values.items()]


def experiment_yaml(values: Mapping[str, Any], header: list[str]) -> str:
    """An experiment file (``# @package _global_``) holding exactly ``values``."""
    defaults = [{f"override /{k}": v} for k, v in values.items() if k in GROUPS]
    nested: dict[str, Any] = {}
    for key, value in values.items():
        if key in GROUPS:
            continue
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    body = {"defaults": defaults, **nested} if defaults else nested
    comments = "".join(f"# {line}\n" for line in header)
    return "# @package _global_\n" + comments + yaml.safe_dump(body, sort_keys=False)
