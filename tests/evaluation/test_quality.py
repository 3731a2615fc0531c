"""The retrieval quality the named experiments promise on holidays-small (exact search)."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_lab.cli.evaluate import run

BOUNDS = [
    (["+experiment=best_handcrafted"], 0.72),
    (["feature=cnn"], 0.74),
    (["+experiment=best"], 0.86),
]
# Each named experiment against the plain feature it builds on, on the same small collections.
BASELINES = [("best", "feature=cnn"), ("best_handcrafted", "feature=hsv")]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One feature cache for the module: every part is extracted once."""
    return tmp_path_factory.getbasetemp() / "quality-cache"


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "bound"), BOUNDS, ids=["best_handcrafted", "cnn", "best"])
def test_map_bounds(
    overrides: list[str], bound: float, make_config, shared_cache: Path, tmp_path: Path
) -> None:
    metrics = run(make_config(*overrides, cache=shared_cache), tmp_path)
    assert metrics["n_queries"] == 240
    assert metrics["map"] >= bound, f"{overrides}: mAP {metrics['map']:.4f} < {bound}"


@pytest.mark.slow
@pytest.mark.parametrize(("experiment", "baseline"), BASELINES, ids=[b[0] for b in BASELINES])
def test_named_experiments_hold_on_small_collections(
    experiment: str, baseline: str, make_config, shared_cache: Path, tmp_path: Path
) -> None:
    """On 5 random 60-group collections (about 160 images, PCA fitted on each), never worse."""
    subsets = ("eval.subsets=5", "eval.subset_groups=60", "eval.subset_seed=7")
    ours = run(make_config(f"+experiment={experiment}", *subsets, cache=shared_cache), tmp_path)
    base = run(make_config(baseline, *subsets, cache=shared_cache), tmp_path / "base")
    for i, (a, b) in enumerate(zip(ours["subsets"]["map"], base["subsets"]["map"], strict=True)):
        assert a >= b, f"subset {i}: {experiment} mAP {a:.4f} < {baseline} {b:.4f}"
