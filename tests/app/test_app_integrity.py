"""The app through AppTest with broken, damaged and edited indexes beside good ones.

Each test copies the lab's two good indexes (see ``tests/app/test_app.py``) into a private
indexes folder, breaks a third copy in one way, and checks that the app shows that index as
broken in one message while the good ones still answer.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from search_lab.app import paths as app_paths
from search_lab.core import read_json_object, write_json
from search_lab.evaluation import OUTPUTS_ENV
from tests.app.test_app import (  # noqa: F401
    APP,
    EASY_QUERY,
    PAGES,
    Lab,
    _result_captions,
    _unescape,
    lab,
)
from tests.core.test_integrity import flip

GOOD = ("hsv-cosine-exact", "hsv-euclidean-exact")


def _edit_manifest(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        write_json_any(folder / "manifest.json", edit(read_json_object(folder / "manifest.json")))

    return apply


def write_json_any(path: Path, data: Any) -> None:
    """Write any JSON value (a manifest of the wrong shape included)."""
    if isinstance(data, dict):
        write_json(path, data)
    else:
        path.write_text(json.dumps(data))


def _app(
    lab: Lab,  # noqa: F811
    indexes: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AppTest:
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(indexes))
    monkeypatch.setenv(OUTPUTS_ENV, str(lab.outputs))
    monkeypatch.setenv("SEARCH_LAB_CACHE", str(lab.cache))
    monkeypatch.setenv("HOLIDAYS_DIR", str(lab.dataset))
    return AppTest.from_file(str(APP), default_timeout=120)


def _lab_with(
    lab: Lab,  # noqa: F811
    tmp_path: Path,
    damage: Callable[[Path], None],
) -> Path:
    """The lab's good indexes plus ``broken``, a copy of the cosine one with ``damage`` done."""
    indexes = tmp_path / "indexes"
    for name in GOOD:
        shutil.copytree(lab.indexes / name, indexes / name)
    shutil.copytree(lab.indexes / GOOD[0], indexes / "broken")
    damage(indexes / "broken")
    return indexes


def _outside(tmp_path: Path) -> Callable[[Path], None]:
    """Point the manifest's root at a folder outside the served dataset (same file names)."""
    other = tmp_path / "other"

    def apply(folder: Path) -> None:
        shutil.copytree(read_json_object(folder / "manifest.json")["root"], other)
        _edit_manifest(lambda m: {**m, "root": str(other)})(folder)

    return apply


@pytest.mark.parametrize(
    "shape",
    [lambda m: [m], lambda m: {k: v for k, v in m.items() if k != "config"}],
    ids=["list", "no-config"],
)
def test_malformed_manifest_is_one_broken_index(
    lab: Lab,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shape,
) -> None:
    indexes = _lab_with(lab, tmp_path, _edit_manifest(shape))
    at = _app(lab, indexes, monkeypatch).run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith("Index broken cannot be used:")
    assert at.selectbox(key="search_index").options == list(GOOD)
    at.selectbox(key="search_query").set_value(EASY_QUERY).run()
    assert not at.exception and len(_result_captions(at)) == 10
    at.switch_page(f"{PAGES}/compare_page.py").run()
    assert not at.exception
    assert at.multiselect(key="compare_indexes").options == list(GOOD)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: flip(d / "vectors.npy", 100_000), "vectors.npy is damaged"),
        (
            _edit_manifest(lambda m: {**m, "names": ["../../../../tmp/x.jpg", *m["names"][1:]]}),
            "'../../../../tmp/x.jpg' leads outside the dataset folder",
        ),
        ("outside", "is outside the folders this program serves"),
        (_edit_manifest(lambda m: m["config"].update(metric={"name": "dot"}) or m), "metric"),
    ],
    ids=["flipped-bytes", "name-escapes", "root-elsewhere", "metric-edited"],
)
def test_index_that_fails_its_checks_is_refused_in_one_line(
    lab: Lab,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage,
    message: str,
) -> None:
    indexes = _lab_with(lab, tmp_path, _outside(tmp_path) if damage == "outside" else damage)
    at = _app(lab, indexes, monkeypatch).run()
    at.selectbox(key="search_index").set_value("broken").run()
    assert not at.exception
    errors = [_unescape(e.value) for e in at.error]
    assert len(errors) == 1 and message in errors[0]
    assert not at.image  # nothing shown from a refused index
    at.switch_page(f"{PAGES}/compare_page.py").run()
    at.multiselect(key="compare_indexes").set_value(["broken", *GOOD]).run()
    at.selectbox(key="compare_query").set_value(EASY_QUERY).run()
    assert not at.exception
    errors = [_unescape(e.value) for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Index broken cannot be used:")
    assert len(_result_captions(at)) == 2 * 8  # the two good indexes still compared
