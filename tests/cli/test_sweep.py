"""Sweeps: experiment and launcher configs, job folders, summary table, resume, parallel launchers.

The end-to-end tests run ``python -m search_lab.evaluate -m ...`` on holidays-small with a tiny
HSV histogram (2x2x2 bins, one process per job) in private sweep and cache folders.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from search_lab.cli import comparable_config, finished_metrics, job_subdir
from search_lab.cli.glue import AggregateSweep
from search_lab.cli.sweep import SUMMARY_CSV, SUMMARY_MD, write_summary
from search_lab.core import write_json

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
EXPERIMENTS = ["sweep_features", "sweep_hsv_bins", "sweep_annoy", "sweep_metrics"]
JOBS = ["metric=cosine", "metric=euclidean"]


def sweep(
    sweep_dir: Path, cache: Path, holidays: Path, *overrides: str
) -> subprocess.CompletedProcess:
    """Run a 2-job sweep (cosine, euclidean) of tiny HSV features; fails the test if it fails."""
    command = [
        sys.executable,
        "-m",
        "search_lab.evaluate",
        "-m",
        "metric=cosine,euclidean",
        "feature.bins=[2,2,2]",
        "workers=1",
        "progress=false",
        f"dataset.root={holidays}",
        f"cache_dir={cache}",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def basic_sweep(
    tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path
) -> tuple[Path, Path, str]:
    """A finished 2-job sweep with the basic (in-process) launcher: (sweep dir, cache, output)."""
    base = tmp_path_factory.mktemp("basic")
    done = sweep(base / "sweep", base / "cache", holidays_dir)
    return base / "sweep", base / "cache", done.stdout + done.stderr


# --------------------------------------------------------------------------- configs


def compose_hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_sweeps_known_values(name: str) -> None:
    cfg = compose_hydra([f"+experiment={name}"])
    params = cfg.hydra.sweeper.params
    assert params, f"{name} declares no sweep"
    assert str(cfg.hydra.sweep.dir).startswith(f"outputs/sweeps/{name}/")
    for key, values in params.items():
        group = CONF / key
        if group.is_dir():  # a group sweep: every option must exist
            for option in str(values).split(","):
                assert (group / f"{option}.yaml").is_file(), f"{name}: no {key} option {option!r}"
        else:  # a parameter sweep: the key must exist in the composed config
            assert OmegaConf.select(cfg, key) is not None, f"{name}: {key} is not in the config"
    experiment = (ROOT / "experiments" / f"{name}.yaml").read_text()
    assert experiment.startswith("# @package _global_")


def test_annoy_sweep_selects_annoy() -> None:
    cfg = compose_hydra(["+experiment=sweep_annoy"])
    assert cfg.index.name == "annoy" and set(cfg.hydra.sweeper.params) == {
        "index.n_trees",
        "index.search_k",
    }


def test_slurm_launcher_extends_submitit() -> None:
    launcher = compose_hydra(["hydra/launcher=slurm"]).hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (
        launcher.cpus_per_task == 4
        and launcher.timeout_min == 60
        and launcher.array_parallelism == 32
    )


def test_ray_launcher_config_is_optional() -> None:
    """The Ray config extends the plugin's ``ray``; composed only where the plugin is installed."""
    text = (CONF / "hydra" / "launcher" / "ray_cluster.yaml").read_text()
    assert yaml.safe_load(text)["defaults"] == ["ray", "_self_"]
    pytest.importorskip(
        "hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher not installed"
    )
    launcher = compose_hydra(["hydra/launcher=ray_cluster"]).hydra.launcher
    assert launcher._target_.endswith("RayLauncher") and launcher.ray.init.address == "auto"


def test_config_wires_callback_and_stable_subdirs() -> None:
    hydra_cfg = compose_hydra([]).hydra
    assert hydra_cfg.callbacks.aggregate._target_ == "search_lab.cli.glue.AggregateSweep"
    subdir = OmegaConf.to_container(hydra_cfg.sweep)["subdir"]  # unresolved
    assert subdir.startswith("${sweep_subdir:${hydra.job.override_dirname}")  # not the job number


# --------------------------------------------------------------------------- units


def test_job_subdir() -> None:
    assert job_subdir("feature=hsv,metric=cosine", 3) == "feature=hsv,metric=cosine"
    assert job_subdir("", 3) == "job3"
    assert job_subdir("post.x=a/b", 0) == "post.x=a_b"
    long = ",".join(f"key{i}=value{i}" for i in range(30))
    short = job_subdir(long, 0)
    assert len(short) == 120 and short == job_subdir(long, 5) and short != job_subdir(long + "x", 0)


def test_comparable_config_ignores_only_neutral_keys() -> None:
    cfg = {
        "feature": {"name": "hsv", "bins": (2, 2, 2)},
        "progress": True,
        "workers": 2,
        "cache_dir": "/a",
    }
    same = {
        "feature": {"name": "hsv", "bins": [2, 2, 2]},
        "progress": False,
        "workers": None,
        "cache_dir": "/b",
    }
    assert comparable_config(cfg) == comparable_config(same)
    assert comparable_config(cfg) != comparable_config(
        {**same, "feature": {"name": "hsv", "bins": [4, 4, 4]}}
    )


def test_finished_metrics(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = {"feature": {"name": "hsv"}, "metric": {"name": "cosine"}, "progress": True}
    assert finished_metrics(tmp_path, cfg) is None  # nothing there yet
    write_json(tmp_path / "metrics.json", {"map": 0.5, "config": {**cfg, "progress": False}})
    assert finished_metrics(tmp_path, cfg)["map"] == 0.5
    assert finished_metrics(tmp_path, {**cfg, "metric": {"name": "euclidean"}}) is None
    (tmp_path / "metrics.json").write_text("{truncated")
    assert finished_metrics(tmp_path, cfg) is None and "running the job again" in caplog.text


def test_write_summary_and_callback(tmp_path: Path) -> None:
    assert write_summary(tmp_path / "absent") is None
    for name, value in [("metric=a", 0.25), ("metric=b", 0.75)]:
        write_json(
            tmp_path / name / "metrics.json",
            {"map": value, "extract_s": 1.0, "build_s": 0.0, "search_s": 0.0},
        )
    AggregateSweep().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    rows = list(csv.DictReader((tmp_path / SUMMARY_CSV).open()))
    assert [r["name"] for r in rows] == ["metric=b", "metric=a"]
    table = (tmp_path / SUMMARY_MD).read_text().splitlines()
    assert (
        table[0].startswith("| # | name |")
        and "run" not in table[0]
        and "| 0 | metric=b |" in table[2]
    )


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_sweep_job_folders_are_named_by_overrides(basic_sweep) -> None:
    sweep_dir, _, _ = basic_sweep
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == [f"feature.bins=[2,2,2],{job}" for job in JOBS]


@pytest.mark.slow
def test_summary_rows_equal_each_jobs_metrics(basic_sweep) -> None:
    sweep_dir, _, output = basic_sweep
    rows = list(csv.DictReader((sweep_dir / SUMMARY_CSV).open()))
    assert len(rows) == 2 and "summary of 2 runs" in output
    assert float(rows[0]["map"]) >= float(rows[1]["map"])
    for row in rows:
        saved = json.loads((Path(row["run"]) / "metrics.json").read_text())
        assert row["name"] == Path(row["run"]).name
        assert row["metric"] == saved["config"]["metric"]["name"] and row["feature"] == "hsv"
        assert float(row["map"]) == pytest.approx(saved["map"], rel=1e-12)
        for k in ("1", "5", "10"):
            assert float(row[f"P@{k}"]) == pytest.approx(saved["precision_at"][k], rel=1e-12)
            assert float(row[f"R@{k}"]) == pytest.approx(saved["recall_at"][k], rel=1e-12)
        for key in ("extract_s", "build_s", "search_s", "query_ms_p50", "query_ms_p95"):
            assert float(row[key]) == pytest.approx(saved[key], rel=1e-12)
        assert int(row["n_images"]) == saved["n_images"] == 648
    markdown = (sweep_dir / SUMMARY_MD).read_text()
    assert all(Path(row["run"]).name in markdown for row in rows)


@pytest.mark.slow
def test_rerun_resumes_only_missing_jobs(basic_sweep, tmp_path: Path, holidays_dir: Path) -> None:
    original, cache, _ = basic_sweep
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(original, sweep_dir)
    kept, lost = (sweep_dir / f"feature.bins=[2,2,2],{job}" for job in JOBS)
    kept_mtime = (kept / "metrics.json").stat().st_mtime_ns
    (lost / "metrics.json").unlink()
    (sweep_dir / SUMMARY_CSV).unlink()

    done = sweep(sweep_dir, cache, holidays_dir, "progress=true")  # progress does not count
    output = done.stdout + done.stderr
    assert output.count("skipping finished job") == 1 and f"skipping finished job {kept}" in output
    assert output.count("results in") == 1 and f"results in {lost}" in output
    assert (kept / "metrics.json").stat().st_mtime_ns == kept_mtime
    assert (lost / "metrics.json").is_file() and (sweep_dir / SUMMARY_CSV).is_file()


@pytest.mark.slow
def test_joblib_jobs_share_one_extraction(tmp_path: Path, holidays_dir: Path) -> None:
    """Two parallel jobs need the same features: one extracts under the lock, the other reads."""
    sweep_dir, cache = tmp_path / "sweep", tmp_path / "cache"
    sweep(sweep_dir, cache, holidays_dir, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    metrics = {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}
    assert len(metrics) == 2
    assert sorted(m["features_cached"] for m in metrics.values()) == [False, True]
    assert len(list(cache.glob("*.npz"))) == 1
    assert (sweep_dir / SUMMARY_MD).is_file()


@pytest.mark.slow
def test_submitit_local_runs_the_cluster_code_path(
    basic_sweep, tmp_path: Path, holidays_dir: Path
) -> None:
    _, cache, _ = basic_sweep
    sweep_dir = tmp_path / "sweep"
    sweep(
        sweep_dir,
        cache,
        holidays_dir,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.cpus_per_task=1",
    )
    rows = list(csv.DictReader((sweep_dir / SUMMARY_CSV).open()))
    assert sorted(r["metric"] for r in rows) == ["cosine", "euclidean"]
    assert any((sweep_dir / ".submitit").iterdir())  # the jobs went through submitit
    assert all(os.path.isfile(Path(r["run"]) / "rankings.dat") for r in rows)
