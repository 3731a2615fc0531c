"""The one list of keys that cannot change a result, and each place that uses it."""

from __future__ import annotations

from search_lab.cli import comparable_config, composed
from search_lab.cli.glue import folder_excluded_keys
from search_lab.evaluation import name_excluded
from search_lab.retrieval import RESULT_NEUTRAL_KEYS, result_neutral
from search_lab.retrieval.extract import RUNTIME_PARAMS, identity
from search_lab.retrieval.index_identity import significant


def test_a_key_stands_for_everything_under_it() -> None:
    assert result_neutral("workers") and result_neutral("+workers") and result_neutral("~progress")
    assert result_neutral("executor") and result_neutral("executor.address")
    assert result_neutral("feature.threads") and result_neutral("index.query_jobs")
    assert not result_neutral("feature.bins") and not result_neutral("feature")
    assert not result_neutral("index.threadsX") and not result_neutral("workersX")


def test_feature_cache_and_index_identity_use_it() -> None:
    assert {"threads", "batch_size", "download", "device", "engine", "export_dir"} == RUNTIME_PARAMS
    feature = {"name": "cnn", "size": 320, "threads": 4, "engine": "auto", "precision": "fp32"}
    assert identity(feature) == {"name": "cnn", "size": 320}
    cfg = {"feature": feature, "index": {"name": "annoy", "n_trees": 10, "n_jobs": 2}}
    assert significant(cfg) == {
        "feature.name": "cnn",
        "feature.size": 320,
        "feature.precision": "fp32",
        "index.name": "annoy",
        "index.n_trees": 10,
    }


def test_resume_and_run_names_use_it() -> None:
    a = {"feature": {"name": "cnn", "threads": 1}, "executor": {"name": "local"}, "workers": 1}
    b = {"feature": {"name": "cnn", "threads": 8}, "executor": {"name": "ray"}, "progress": False}
    assert comparable_config(a) == comparable_config(b) == {"feature": {"name": "cnn"}}
    assert comparable_config(a) != comparable_config({"feature": {"name": "hsv"}})
    assert name_excluded("dataset.root") and name_excluded("executor.num_cpus")
    assert not name_excluded("dataset") and not name_excluded("feature.size")


def test_sweep_folders_leave_out_neutral_keys_paths_and_the_experiment() -> None:
    overrides = [
        "feature=cnn",
        "feature.threads=3",
        "index=annoy",
        "index.n_trees=3",
        "workers=2",
        "progress=false",
        "executor=ray",
        "executor.num_cpus=2",
        "dataset.root=/x",
        "+experiment=best",
    ]
    job = composed(overrides, hydra=True).hydra.job
    assert job.override_dirname == "feature=cnn,index.n_trees=3,index=annoy"
    excluded = list(job.config.override_dirname.exclude_keys)
    assert excluded == folder_excluded_keys()  # the YAML list is the one definition's
    assert set(excluded) >= RESULT_NEUTRAL_KEYS
    assert {"dataset.root", "experiment", "executor.max_retries", "executor.shard_size"} <= set(
        excluded
    )
