"""The retrieval quality the feature library promises on holidays-small (exact search)."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_lab.evaluate import run

BOUNDS = [
    (["+experiment=best_handcrafted"], 0.62),
    (["feature=cnn"], 0.74),
    (["+experiment=best"], 0.80),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "bound"), BOUNDS, ids=["best_handcrafted", "cnn", "best"])
def test_map_bounds(
    overrides: list[str], bound: float, make_config, tmp_path_factory, tmp_path: Path
) -> None:
    cache = tmp_path_factory.getbasetemp() / "quality-cache"  # shared: parts are extracted once
    metrics = run(make_config(*overrides, cache=cache), tmp_path)
    assert metrics["n_queries"] == 240
    assert metrics["map"] >= bound, f"{overrides}: mAP {metrics['map']:.4f} < {bound}"
