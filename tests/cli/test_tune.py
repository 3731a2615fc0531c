"""``python -m search_lab.tune`` end to end on a small labelled folder with a tiny budget."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from search_lab.cli import tune
from search_lab.evaluation import SPACES
from tests.conftest import CONF, compose_config


def _folder(holidays_dir: Path, root: Path, groups: int) -> Path:
    """The first ``groups`` groups of holidays-small, one subfolder each."""
    by_group: dict[str, list[Path]] = {}
    for path in sorted(holidays_dir.glob("*.jpg")):
        by_group.setdefault(path.stem[:4], []).append(path)
    for group in sorted(by_group)[:groups]:
        (root / group).mkdir(parents=True)
        for path in by_group[group]:
            shutil.copy(path, root / group / path.name)
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Path:
    return _folder(holidays_dir, tmp_path_factory.mktemp("tune") / "photos", 60)


def _args(root: Path, tmp: Path, *extra: str, budget: int = 3, name: str = "t") -> list[str]:
    return [
        f"dataset.root={root}",
        f"cache_dir={tmp / 'cache'}",
        "--budget", str(budget), "--name", name, "--space", "handcrafted",
        "--out", str(tmp / "study"), "--baseline", "feature=hsv",
        "--experiments", str(tmp / "tuned"), *extra,
    ]  # fmt: skip


def test_tiny_budget_end_to_end_and_resume(photos: Path, tmp_path: Path, capsys) -> None:
    name = f"test_{uuid.uuid4().hex[:8]}"
    args = _args(photos, tmp_path, name=name, budget=2)
    assert tune.main(args) == 0
    out = capsys.readouterr().out
    assert "trial 1/2: tune mAP" in out and "trial 2/2" in out
    study = tune.open_study(tmp_path / "study", name)
    cut = study.ask()  # a third trial left running: as if the command were killed mid-trial
    SPACES["handcrafted"](cut)
    assert tune.main(_args(photos, tmp_path, name=name, budget=3)) == 0
    out = capsys.readouterr().out
    assert "trial 3/3" in out and "trial 1/" not in out  # finished trials are not run again
    trials = tune.open_study(tmp_path / "study", name).trials
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1  # the cut-off one
    assert trials[-1].state.name == "COMPLETE" and trials[-1].params == cut.params  # re-run
    summary = (tmp_path / "study" / "summary.md").read_text()
    assert "**test mAP:" in summary and "vs `feature=hsv`" in summary and "p = " in summary
    written = tmp_path / "tuned" / f"{name}.yaml"
    assert written.read_text().startswith("# @package _global_\n")
    target = CONF / "experiment" / "tuned" / f"{name}.yaml"
    target.parent.mkdir(exist_ok=True)
    try:
        shutil.copy(written, target)
        cfg = compose_config([f"+experiment=tuned/{name}"])
        recipe = yaml.safe_load(written.read_text())
        assert cfg["feature"]["bins"] == recipe["feature"]["bins"]
    finally:
        target.unlink()


def test_budget_zero_is_one_line(photos: Path, tmp_path: Path, capsys) -> None:
    assert tune.main(_args(photos, tmp_path, budget=0)) == 2
    assert capsys.readouterr().err == "error: --budget must be at least 1 trial, got 0\n"


def test_no_ground_truth_and_a_small_test_side(holidays_dir: Path, tmp_path: Path, capsys) -> None:
    flat = tmp_path / "flat"
    for path in sorted(holidays_dir.glob("*.jpg"))[:4]:  # one photo per folder: nothing relevant
        (flat / path.stem).mkdir(parents=True)
        shutil.copy(path, flat / path.stem / path.name)
    assert tune.main(_args(flat, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tune needs a labelled collection (groups or labels): ")
    small = _folder(holidays_dir, tmp_path / "small", 10)
    assert tune.main(_args(small, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the test side holds ") and "needs at least 20" in err
