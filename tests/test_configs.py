"""Every config option of every group, and every experiment, composes and builds its parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_lab.retrieval import build_extractor, build_pipeline
from tests.conftest import CONF, compose_config

GROUPS = {
    group: sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    for group in ("dataset", "feature", "index", "metric", "rerank")
}
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
CASES = [f"{group}={option}" for group, options in GROUPS.items() for option in options]


@pytest.mark.parametrize("override", CASES)
def test_group_option_composes(override: str) -> None:
    cfg = compose_config([override])
    group, option = override.split("=")
    assert cfg[group]["name" if group != "dataset" else "layout"]
    if group == "feature":
        assert cfg["feature"]["name"] == option
        build_extractor(cfg["feature"])  # YAML defaults are accepted by the constructor
    elif override != "metric=chi2":  # chi2 is exact-only; its refusal by annoy is tested below
        build_pipeline(cfg)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes(name: str) -> None:
    cfg = compose_config([f"+experiment={name}"])
    assert (
        (Path(CONF) / "experiment" / f"{name}.yaml").read_text().startswith("# @package _global_")
    )
    build_pipeline(cfg)


def test_annoy_refuses_chi2() -> None:
    from search_lab.core import ConfigError

    with pytest.raises(ConfigError, match="chi2"):
        build_pipeline(compose_config(["index=annoy", "metric=chi2"]))


@pytest.mark.parametrize(
    ("index", "metric"),
    [("kdtree", "dot"), ("kdtree", "chi2"), ("hnsw", "manhattan"), ("nndescent", "dot"),
     ("faiss", "manhattan"), ("faiss_ivf", "chi2")],
)  # fmt: skip
def test_unsupported_metric_and_method_pairs_fail_before_work(index: str, metric: str) -> None:
    from search_lab.core import ConfigError

    with pytest.raises(ConfigError, match=f"does not support metric '{metric}'"):
        build_pipeline(compose_config([f"index={index}", f"metric={metric}"]))
