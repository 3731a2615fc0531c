"""The Streamlit app through AppTest: every page on small indexes built from holidays-small.

A session fixture builds two hsv indexes (cosine and Euclidean, features extracted once into a
private cache) and evaluates both into a private outputs folder; each test points the app at
them with SEARCH_LAB_INDEXES, SEARCH_LAB_OUTPUTS, SEARCH_LAB_CACHE and HOLIDAYS_DIR.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.cli.evaluate import run as evaluate
from search_lab.evaluation import OUTPUTS_ENV, paired_comparison, shared_values
from search_lab.report.command import write_report
from search_lab.report.render import Chart, Section, Table, bar_chart
from search_lab.report.sections import HEADINGS
from search_lab.retrieval import build_engine

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
PAGES = "search_lab/app/pages"
EASY_QUERY, EASY_MATCH = "100000.jpg", "100001.jpg"  # hsv ranks the match first


@dataclass(frozen=True)
class Lab:
    """Folders of the test lab: dataset, indexes, outputs, feature cache."""

    dataset: Path
    indexes: Path
    outputs: Path
    cache: Path
    cosine_ap: float  # per-query AP of EASY_QUERY from the hsv/cosine evaluation


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Lab:
    """Two hsv indexes and two evaluation runs (a single run and a sweep job) in a tmp folder."""
    base = tmp_path_factory.mktemp("lab")
    cache, indexes, outputs = base / "cache", base / "indexes", base / "outputs"
    common = [f"dataset.root={holidays_dir}", f"cache_dir={cache}", "workers=1"]
    runs = {"cosine": outputs / "runs" / "r1", "euclidean": outputs / "sweeps" / "s1" / "0"}
    metrics = {}
    for metric, run_dir in runs.items():
        cfg = app_indexes.default_build_config(indexes, [*common, f"metric={metric}"])
        build_engine(cfg).save(indexes / f"hsv-{metric}-exact")
        metrics[metric] = evaluate(cfg, run_dir)
    ap = metrics["cosine"]["per_query_ap"][EASY_QUERY]
    return Lab(holidays_dir, indexes, outputs, cache, ap)


@pytest.fixture
def app(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The app pointed at the lab, run once on its default page (Search)."""
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(lab.indexes))
    monkeypatch.setenv(OUTPUTS_ENV, str(lab.outputs))
    monkeypatch.setenv("SEARCH_LAB_CACHE", str(lab.cache))
    monkeypatch.setenv("HOLIDAYS_DIR", str(lab.dataset))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    return at


def _page(at: AppTest, name: str) -> AppTest:
    """Switch to a page of the navigation and run it; no page may raise."""
    at.switch_page(f"{PAGES}/{name}.py").run()
    assert not at.exception
    return at


def _result_captions(at: AppTest) -> list[str]:
    """Captions of the result thumbnails (the query's own thumbnail left out), unescaped."""
    captions = [_unescape(c) for image in at.image for c in image.captions]
    return [c for c in captions if not c.startswith("query:")]


def _unescape(markdown: str) -> str:
    """The text a caption escaped with ``app_text.plain`` shows (its backslashes removed)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def _metric(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def _tree(*folders: Path) -> dict[Path, int]:
    """Every file under ``folders`` with its mtime, to show nothing was written there."""
    return {p: p.stat().st_mtime_ns for f in folders for p in f.rglob("*") if p.is_file()}


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_search_dataset_query_ranks_relevant_first(app: AppTest, lab: Lab) -> None:
    app.selectbox(key="search_index").set_value("hsv-cosine-exact")
    app.selectbox(key="search_query").set_value(EASY_QUERY)
    app.slider(key="search_k").set_value(7)
    app.run()
    assert not app.exception
    captions = _result_captions(app)
    assert len(captions) == 7
    assert captions[0].startswith(f"✓ #1 {EASY_MATCH} ·")
    assert all(EASY_QUERY not in c for c in captions)  # the query itself is left out
    assert _metric(app, "Average precision") == [f"{lab.cosine_ap:.3f}"]  # = evaluate's AP
    [query_ms] = _metric(app, "Query time")
    assert query_ms.endswith(" ms")


def test_search_shows_plain_words(app: AppTest) -> None:
    captions = " ".join(c.value for c in app.caption)
    assert "HSV colour histogram" in captions and "cosine distance" in captions
    assert "exact search" in captions


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        ("notes.jpg", b"this is not an image", "not a recognised image format"),
        ("cut.jpg", None, "truncated or corrupt"),
        ("huge.png", _png_claiming(20_000, 20_000), "too many pixels"),
    ],
)
def test_search_bad_upload_shows_error(
    app: AppTest, lab: Lab, file_name: str, content: bytes | None, message: str
) -> None:
    if content is None:  # the first 3 kB of a real JPEG
        content = (lab.dataset / EASY_QUERY).read_bytes()[:3000]
    app.radio(key="search_source").set_value("Upload an image").run()
    app.file_uploader(key="search_upload").upload(file_name, content, "image/jpeg").run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and message in errors[0] and "Cannot load image" in errors[0]
    assert _result_captions(app) == []


def test_search_upload_in_memory(app: AppTest, lab: Lab) -> None:
    before = _tree(lab.dataset, lab.indexes)
    app.radio(key="search_source").set_value("Upload an image").run()
    content = (lab.dataset / EASY_QUERY).read_bytes()
    app.file_uploader(key="search_upload").upload("mine.jpg", content, "image/jpeg").run()
    assert not app.exception and not app.error
    captions = _result_captions(app)
    assert len(captions) == 10
    assert captions[0].startswith(f"#1 {EASY_QUERY} · 100% similar · d=0.0000")  # no tick
    assert captions[1].startswith(f"#2 {EASY_MATCH}")
    assert _metric(app, "Average precision") == []
    assert _tree(lab.dataset, lab.indexes) == before  # nothing written next to the data


def test_no_index_offers_the_command_and_builds(
    app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab: Lab
) -> None:
    empty = tmp_path / "indexes"
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(empty))
    app.run()
    assert not app.exception
    assert any(f"python -m search_lab.build_index index_dir={empty}" in c.value for c in app.code)
    app.button(key="build_default").click().run()  # features come from the lab's cache
    assert not app.exception
    assert (empty / "hsv-cosine-exact" / "manifest.json").is_file()
    assert app.selectbox(key="search_index").value == "hsv-cosine-exact"
    assert any("built" in s.value for s in app.success)


def test_no_index_and_no_dataset_says_how_to_fetch(
    app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(tmp_path / "indexes"))
    monkeypatch.setenv("HOLIDAYS_DIR", str(tmp_path / "no-data"))
    app.run()
    assert not app.exception
    assert any("python -m search_lab.data fetch" in e.value for e in app.error)
    assert not [b for b in app.button if b.key == "build_default"]
    _page(app, "dataset_page")
    assert any("python -m search_lab.data fetch" in m.value for m in app.markdown)


def test_compare_page(app: AppTest, lab: Lab) -> None:
    _page(app, "compare_page")
    assert app.multiselect(key="compare_indexes").value == [
        "hsv-cosine-exact",
        "hsv-euclidean-exact",
    ]
    app.selectbox(key="compare_query").set_value(EASY_QUERY).run()
    assert not app.exception
    assert len(_metric(app, "Average precision")) == 2
    captions = _result_captions(app)
    assert len(captions) == 2 * 8
    # rows per rank: rank 1 of each index, then rank 2 of each, ...
    assert [c.split(":")[0] for c in captions[:4]] == [
        "hsv-cosine-exact",
        "hsv-euclidean-exact",
    ] * 2
    assert captions[0].startswith(f"hsv-cosine-exact: ✓ #1 {EASY_MATCH}")
    overlap, overall = (t.value for t in app.table)  # tables that wrap: nothing cut on a phone
    assert [_unescape(c).replace("\u200b", "") for c in overlap.iloc[0][["A", "B", "of"]]] == [
        "hsv-cosine-exact",
        "hsv-euclidean-exact",
        "8",
    ]
    assert 0 <= int(overlap["shared"].iloc[0]) <= 8
    assert [_unescape(c) for c in overall.columns] == ["hsv-cosine-exact", "hsv-euclidean-exact"]
    assert overall.loc["images"].tolist() == ["648", "648"]
    assert "—" not in overall.loc["eval mAP"].tolist()  # both configurations were evaluated


def test_experiments_page(app: AppTest) -> None:
    _page(app, "experiments_page")
    table = app.dataframe[0].value
    assert len(table) == 2 and set(table["Distance"]) == {"cosine", "euclidean"}
    [pair] = [t.value for t in app.table if t.value.columns[-1] == "B − A"]
    assert "mAP" in pair.index and "Date" in pair.index  # rows under the columns' human names
    legend = app.table[0].value  # "What the columns mean"
    assert legend.loc["mAP", "key"] == "map"
    app.multiselect(key="exp_metric").set_value(["euclidean"]).run()
    assert not app.exception
    assert app.dataframe[0].value["Distance"].tolist() == ["euclidean"]
    app.text_input(key="exp_filter").input("map >= 2").run()
    assert not app.exception
    assert any("No run passes" in w.value for w in app.warning)
    app.text_input(key="exp_filter").input("best runs").run()
    assert not app.exception
    assert any("cannot read filter" in e.value for e in app.error)


def test_experiments_page_intervals_and_paired_verdict(
    app: AppTest, lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "outputs"
    shutil.copytree(lab.outputs, outputs)
    common = [f"dataset.root={lab.dataset}", f"cache_dir={lab.cache}", "workers=1"]
    cfg = app_indexes.default_build_config(lab.indexes, [*common, "metric=manhattan"])
    better = evaluate(cfg, outputs / "runs" / "r2")  # L1 beats cosine on hsv (0.650 vs 0.569)
    monkeypatch.setenv(OUTPUTS_ENV, str(outputs))
    _page(app, "experiments_page")
    chart = json.loads(app.get("vega_lite_chart")[0].proto.spec)
    marks = [layer["mark"]["type"] for layer in chart["layer"]]
    assert marks == ["bar", "errorbar"]  # mAP bars with their 95% intervals
    assert chart["layer"][1]["encoding"]["x2"]["field"] == "map_ci_high"

    names = list(app.dataframe[0].value["Overrides"])
    app.selectbox(key="exp_a").set_value(names.index("r1")).run()  # cosine
    app.selectbox(key="exp_b").set_value(names.index("r2")).run()  # manhattan
    assert not app.exception
    cosine = json.loads((lab.outputs / "runs" / "r1" / "metrics.json").read_text())
    _, a, b = shared_values(cosine["per_query_ap"], better["per_query_ap"])
    result = paired_comparison(a, b)
    verdict = [m.value for m in app.markdown if m.value.startswith("B is")]
    assert verdict == [
        f"B is better by {result.delta:.4f} [{result.low:+.4f}, {result.high:+.4f}] "
        "(B − A, 95% interval over 240 shared queries), p < 0.001: significant at 5%."
    ]
    app.selectbox(key="exp_b").set_value(names.index("0")).run()  # euclidean: the same APs
    assert any("same AP on all 240 shared queries" in m.value for m in app.markdown)


def test_experiments_page_without_runs(
    app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OUTPUTS_ENV, str(tmp_path / "none"))
    _page(app, "experiments_page")
    assert any("python -m search_lab.evaluate" in i.value for i in app.info)


def test_dataset_page(app: AppTest) -> None:
    _page(app, "dataset_page")
    assert _metric(app, "Images") == ["648"]
    app.selectbox(key="dataset_query").set_value(EASY_QUERY).run()
    assert not app.exception
    captions = [_unescape(c) for image in app.image for c in image.captions]
    assert captions[0] == f"query {EASY_QUERY}" and EASY_MATCH in captions
    assert any("skipped no file" in s.value for s in app.success)


def _write_findings(outputs: Path, lab: Lab) -> Path:
    """A findings report written by the report's own writer from the lab's cosine run."""
    metrics = json.loads((lab.outputs / "runs" / "r1" / "metrics.json").read_text())
    low, high = metrics["map_ci95"]
    png = bar_chart(["hsv"], [metrics["map"]], [(low, high)], ["families"], "mAP")
    cell = f"{metrics['map']:.4f} [{low:.3f}, {high:.3f}]"
    sections = [
        Section(h, [f"Answer {i}."], [Table("runs", ["configuration", "mAP"], [["hsv", cell]])])
        for i, h in enumerate(HEADINGS, 1)
    ]
    sections[0].charts.append(Chart("q1-map", "mAP of every feature configuration", png))
    return write_report(outputs / "report", sections, {"runs": []}, ["Made by a test."])


def test_findings_page_without_report(
    app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OUTPUTS_ENV, str(tmp_path / "none"))
    _page(app, "findings_page")
    assert any("python -m search_lab.report" in i.value for i in app.info)


def test_findings_page_shows_latest_report(
    app: AppTest, lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "outputs"
    (outputs / "report" / "2000-01-01_00-00-00").mkdir(parents=True)  # older, incomplete
    (outputs / "report" / ".2099-01-01_00-00-00.tmp-1").mkdir()  # being written: ignored
    folder = _write_findings(outputs, lab)
    monkeypatch.setenv(OUTPUTS_ENV, str(outputs))
    _page(app, "findings_page")
    text = "\n".join(m.value for m in app.markdown)
    for heading in HEADINGS:
        assert f"## {heading}" in text
    assert "Answer 4." in text and folder.name in _unescape(app.caption[0].value)
    captions = [c for image in app.image for c in image.captions]
    assert captions == ["mAP of every feature configuration"]
