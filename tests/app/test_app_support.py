"""Unit tests for the app layer's Streamlit-free modules (search_lab.app.*), on hand-made inputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from search_lab.app import datasets as app_datasets
from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.app import queries as app_queries
from search_lab.app import runs as app_runs
from search_lab.app import text as app_text
from search_lab.app import uploads as app_uploads
from search_lab.core import ImageLoadError
from search_lab.data import Dataset
from search_lab.evaluation import OUTPUTS_ENV, outputs_dir
from search_lab.retrieval import Hit

CONFIG = {
    "feature": {"name": "hsv", "bins": [8, 12, 3]},
    "metric": {"name": "cosine"},
    "index": {"name": "exact", "block": 256},
    "post": {"l2": True},
}


def _dataset(root: Path = Path("/nowhere")) -> Dataset:
    """Two groups: a (query), b, c in group 1; d (query) and e in group 2."""
    return Dataset(
        root=root,
        names=("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"),
        groups=("1", "1", "1", "2", "2"),
        queries=(0, 3),
        relevant={0: frozenset({1, 2}), 3: frozenset({4})},
    )


class _FakeEngine:
    """Just enough of SearchEngine for ``search``: names and a query returning fixed hits."""

    def __init__(self, order: list[str]) -> None:
        self.names = sorted(order)
        self.order = order
        self.asked: list[int] = []

    def query(self, source: object, k: int) -> tuple[list[Hit], float]:
        self.asked.append(k)
        hits = [Hit(r + 1, self.names.index(n), n, 0.1 * r) for r, n in enumerate(self.order)]
        return hits[:k], 0.002


def test_dirs_follow_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(app_paths.INDEXES_ENV, raising=False)
    monkeypatch.delenv(OUTPUTS_ENV, raising=False)
    assert app_paths.indexes_dir() == Path("indexes")
    assert outputs_dir() == Path("outputs")
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(tmp_path / "i"))
    monkeypatch.setenv(OUTPUTS_ENV, str(tmp_path / "o"))
    assert app_paths.indexes_dir() == tmp_path / "i"
    assert outputs_dir() == tmp_path / "o"


def test_plain_words_and_describe() -> None:
    words = app_text.plain_words(CONFIG)
    assert words == {
        "feature": "HSV colour histogram",
        "metric": "cosine distance",
        "index": "exact search (every image compared)",
    }
    annoy = {**CONFIG, "index": {"name": "annoy", "n_trees": 50}}
    assert app_text.plain_words(annoy)["index"] == "approximate search (Annoy), 50 trees"
    unknown = {**CONFIG, "feature": {"name": "sift"}, "metric": {"name": "hamming"}}
    assert app_text.plain_words(unknown)["feature"] == "sift features"
    assert app_text.plain_words(unknown)["metric"] == "hamming distance"
    assert app_text.describe(CONFIG, 648).endswith(", 648 images")


def test_build_command() -> None:
    assert app_indexes.build_command(Path("indexes")) == "python -m search_lab.build_index"
    assert app_indexes.build_command(Path("/x/idx"), "/data/h") == (
        "HOLIDAYS_DIR=/data/h python -m search_lab.build_index index_dir=/x/idx/hsv-cosine-exact"
    )


def test_default_build_config_targets_parent(tmp_path: Path) -> None:
    cfg = app_indexes.default_build_config(tmp_path, ["cache_dir=/c"])
    assert cfg["index_dir"] == str(tmp_path / "hsv-cosine-exact")
    assert cfg["feature"]["name"] == "hsv" and cfg["metric"]["name"] == "cosine"
    assert cfg["progress"] is False and cfg["cache_dir"] == "/c"


def test_index_choices_lists_manifests(tmp_path: Path) -> None:
    built = tmp_path / "hsv-cosine-exact"
    built.mkdir()
    manifest = {"format": 2, "config": CONFIG, "names": ["a", "b"], "root": "/d", "dim": 3}
    (built / "manifest.json").write_text(json.dumps({**manifest, "files": {}}))
    (tmp_path / "half-built").mkdir()
    (tmp_path / "a-list").mkdir()
    (tmp_path / "a-list" / "manifest.json").write_text(json.dumps([manifest]))
    [choice] = app_indexes.index_choices(tmp_path)
    assert list(app_indexes.broken_indexes(tmp_path)) == ["a-list"]
    assert choice.path == built and choice.config == CONFIG
    assert "HSV colour histogram" in choice.label and "2 images" in choice.label
    assert app_indexes.index_choices(tmp_path / "missing") == []


def test_collection_path_refuses_foreign_names(tmp_path: Path) -> None:
    names = ["a.jpg", "../secret.jpg", "/etc/passwd"]
    assert app_paths.collection_path(tmp_path, names, "a.jpg") == (tmp_path / "a.jpg").resolve()
    with pytest.raises(ImageLoadError, match="not an image of this collection"):
        app_paths.collection_path(tmp_path, names, "b.jpg")
    for name in ("../secret.jpg", "/etc/passwd"):
        with pytest.raises(ImageLoadError, match="outside"):
            app_paths.collection_path(tmp_path, names, name)


def test_thumbnail_is_a_small_jpeg() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (1000, 500), (200, 10, 10)).save(buffer, format="PNG")
    thumb = Image.open(io.BytesIO(app_uploads.thumbnail_jpeg(buffer.getvalue(), max_side=100)))
    assert thumb.format == "JPEG" and thumb.size == (100, 50)


def test_thumbnail_of_garbage_raises_image_load_error() -> None:
    with pytest.raises(ImageLoadError, match="not a recognised image format"):
        app_uploads.thumbnail_jpeg(b"not an image")


def test_ground_truth_helpers() -> None:
    data = _dataset()
    assert app_queries.dataset_queries(data, ["a.jpg", "b.jpg"]) == ["a.jpg"]
    assert app_queries.relevant_names(data, "a.jpg") == {"b.jpg", "c.jpg"}
    assert app_queries.relevant_names(data, "b.jpg") == frozenset()
    assert app_datasets.group_sizes(data) == {"1": 3, "2": 2}


def test_query_ap_by_hand() -> None:
    data = _dataset()
    # Query a first (ignored), b relevant at rank 0, d not, c relevant at rank 2:
    # (1 + 1) / 4 + (1/2 + 2/3) / 4 = 19/24.
    ranking = ["a.jpg", "b.jpg", "d.jpg", "c.jpg", "e.jpg"]
    assert app_queries.query_ap(data, "a.jpg", ranking) == pytest.approx(19 / 24)
    assert app_queries.query_ap(data, "a.jpg", ["b.jpg", "c.jpg"]) == pytest.approx(1.0)
    assert app_queries.query_ap(data, "a.jpg", ["b.jpg"]) == pytest.approx(0.5)  # c never retrieved
    assert app_queries.query_ap(data, "b.jpg", ranking) is None  # not a query
    assert app_queries.query_ap(data, "zzz.jpg", ranking) is None


def test_without_query_renumbers() -> None:
    hits = [Hit(1, 0, "a.jpg", 0.0), Hit(2, 1, "b.jpg", 0.5), Hit(3, 2, "c.jpg", 0.7)]
    kept = app_queries.without_query(hits, "a.jpg")
    assert [(h.rank, h.name) for h in kept] == [(1, "b.jpg"), (2, "c.jpg")]


def test_search_dataset_query_ranks_everything_and_scores() -> None:
    data = _dataset()
    engine = _FakeEngine(["a.jpg", "b.jpg", "d.jpg", "c.jpg", "e.jpg"])
    result = app_queries.search(engine, Path("a.jpg"), 2, data, "a.jpg")  # type: ignore[arg-type]
    assert engine.asked == [5]  # the whole index, for an honest AP
    assert [h.name for h in result.hits] == ["b.jpg", "d.jpg"]
    assert result.ap == pytest.approx(19 / 24)
    assert result.relevant == {"b.jpg", "c.jpg"} and result.ranked == 5


def test_search_upload_asks_for_k_only() -> None:
    engine = _FakeEngine(["b.jpg", "a.jpg", "c.jpg"])
    result = app_queries.search(engine, b"bytes", 2)  # type: ignore[arg-type]
    assert engine.asked == [2]
    assert [h.name for h in result.hits] == ["b.jpg", "a.jpg"]
    assert result.ap is None and result.relevant is None


def test_caption() -> None:
    hit = Hit(3, 7, "100001.jpg", 0.12345)
    assert app_text.caption(hit) == "#3 100001.jpg · d=0.1235"
    assert app_text.caption(hit, True) == "✓ #3 100001.jpg · d=0.1235"
    assert app_text.caption(hit, False) == "#3 100001.jpg · d=0.1235"
    assert app_text.caption(hit, True, 0.6049) == "✓ #3 100001.jpg · 60% similar · d=0.1235"
    weak = app_text.caption(hit, False, 0.2, weak=True)
    assert weak == "#3 100001.jpg · 20% similar · d=0.1235 · weak match"


def test_overlap() -> None:
    assert app_queries.overlap(["a", "b", "c"], ["b", "c", "d"]) == (2, pytest.approx(0.5))
    assert app_queries.overlap(["a"], ["b"]) == (0, 0.0)
    assert app_queries.overlap([], []) == (0, 1.0)
    rows = app_queries.overlap_rows({"x": ["a", "b"], "y": ["b", "c"], "z": ["a", "b"]})
    assert [(r["A"], r["B"], r["shared"], r["jaccard"]) for r in rows] == [
        ("x", "y", 1, 0.333),
        ("x", "z", 2, 1.0),
        ("y", "z", 1, 0.333),
    ]


def test_chunked() -> None:
    assert app_text.chunked([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert app_text.chunked([], 3) == []
    with pytest.raises(ValueError, match="positive"):
        app_text.chunked([1], 0)


def test_manifest_rows_and_skipped() -> None:
    manifest = {
        "config": CONFIG,
        "names": ["a", "b"],
        "skipped": {"z.jpg": "truncated"},
        "dim": 288,
        "extract_s": 1.234,
        "build_s": 0.0123,
        "created": "today",
    }
    row = app_indexes.manifest_row("hsv", manifest)
    assert row["images"] == 2 and row["skipped"] == 1 and row["dim"] == 288
    assert row["feature"] == "HSV colour histogram" and row["extract_s"] == 1.23
    assert app_indexes.skipped_rows({"hsv": manifest, "lbp": {"skipped": {}}}) == [
        {"index": "hsv", "file": "z.jpg", "reason": "truncated"}
    ]


def test_same_setup_ignores_dataset_and_runtime_keys() -> None:
    other = {**CONFIG, "workers": 4, "dataset": {"root": "/x"}, "progress": True}
    assert app_runs.same_setup(CONFIG, other)
    assert not app_runs.same_setup(CONFIG, {**CONFIG, "metric": {"name": "euclidean"}})


def test_runs_signature(tmp_path: Path) -> None:
    assert app_runs.runs_signature(tmp_path / "missing") == ()
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    [(path, _)] = app_runs.runs_signature(tmp_path)
    assert path == str(run / "metrics.json")


def test_safe_label_keeps_the_name_on_one_line() -> None:
    assert app_text.safe_label("100000.jpg") == "100000.jpg"
    assert app_text.safe_label("![x](http://evil/a.png)") == "![x](http://evil/a.png)"
    assert app_text.safe_label("a\nb\x00.jpg") == "a\ufffdb\ufffd.jpg"
    assert app_text.safe_label("  ") == "upload"
    assert len(app_text.safe_label("a" * 500)) == 80


def _runs_table(tmp_path: Path) -> pd.DataFrame:
    """A load_runs-like table of three runs whose folders hold their saved configs."""
    rows = []
    for name, metric, index, value, rotations in [
        ("a", "cosine", "exact", 0.50, False),
        ("b", "cosine", "annoy", 0.45, False),
        ("c", "cosine", "exact", 0.60, True),
    ]:
        run = tmp_path / name
        run.mkdir()
        config = {
            **CONFIG,
            "metric": {"name": metric},
            "dataset": {"root": "/d"},
            "eval": {"rotations": rotations, "depth": None},
        }
        if index == "annoy":
            config["index"] = {"name": "annoy", "n_trees": 10}
        (run / "metrics.json").write_text(json.dumps({"map": value, "config": config}))
        rows.append(
            {
                "run": str(run),
                "name": f"run-{name}",
                "feature": "hsv",
                "metric": metric,
                "index": index,
                "map": value,
                "P@1": value,
                "query_ms_p50": 1.0 + value,
                "ANN-R@1": 0.9 if index == "annoy" else None,
                "ANN-R@10": 0.8 if index == "annoy" else None,
            }
        )
    return pd.DataFrame(rows)


def test_matching_run_map_needs_same_setup_data_and_plain_queries(tmp_path: Path) -> None:
    runs = _runs_table(tmp_path)
    config = {**CONFIG, "dataset": {"root": "/d"}}
    assert app_runs.matching_run_map(runs, config) == 0.50  # c used rotations, b another index
    assert app_runs.matching_run_map(runs, {**config, "dataset": {"root": "/other"}}) is None
    assert app_runs.matching_run_map(runs.iloc[0:0], config) is None


def test_filter_table(tmp_path: Path) -> None:
    runs = _runs_table(tmp_path)
    assert app_runs.filter_table(runs, "", {})["name"].tolist() == ["run-a", "run-b", "run-c"]
    assert app_runs.filter_table(runs, "RUN-B", {})["name"].tolist() == ["run-b"]
    assert app_runs.filter_table(runs, "", {"index": ["exact"], "metric": []})["name"].tolist() == [
        "run-a",
        "run-c",
    ]


def test_run_pair_shows_differences(tmp_path: Path) -> None:
    runs = _runs_table(tmp_path)
    pair = app_runs.run_pair(runs, 0, 2)
    assert list(pair.columns) == ["A: run-a", "B: run-c", "B − A"]
    assert pair.loc["mAP"].tolist() == ["0.5000", "0.6000", "+0.1000"]
    assert pair.loc["Overrides", "B − A"] == "—"  # an empty cell reads "—", not "" or None
    assert pair.loc["ANN recall@10"].tolist() == ["—", "—", "—"]
    assert len(set(app_runs.run_pair(runs, 1, 1).columns)) == 3  # one run against itself


def test_pair_verdict_in_words(tmp_path: Path) -> None:
    runs = _runs_table(tmp_path)  # rows a, b, c
    three = ("q1.jpg", "q2.jpg", "q3.jpg")
    twenty = [f"q{i:02d}.jpg" for i in range(20)]
    scores = {
        str(tmp_path / "a"): dict.fromkeys(three, 0.5),
        str(tmp_path / "b"): dict.fromkeys(three, 0.75),  # +0.25 on all 3: p = 2/8 exactly
        str(tmp_path / "c"): {"other.jpg": 1.0},
    }
    assert app_runs.pair_verdict(runs, 0, 1, scores) == (
        "B is better by 0.2500 [+0.2500, +0.2500] (B − A, 95% interval over 3 shared "
        "queries), p = 0.250: not significant at 5%."
    )
    assert app_runs.pair_verdict(runs, 1, 0, scores).startswith(
        "B is worse by 0.2500 [-0.2500, -0.2500]"
    )
    assert app_runs.pair_verdict(runs, 0, 0, scores) == (
        "A and B give the same AP on all 3 shared queries: no difference."
    )
    assert app_runs.pair_verdict(runs, 0, 2, scores).startswith("A and B share no query")
    assert app_runs.pair_verdict(runs, 0, 1, {}).startswith(
        "No per-query APs saved for run A and B"
    )
    scores[str(tmp_path / "a")] = dict.fromkeys(twenty, 0.4)
    scores[str(tmp_path / "b")] = {q: 0.41 + 0.01 * i for i, q in enumerate(twenty)}
    verdict = app_runs.pair_verdict(runs, 0, 1, scores)  # better on each of 20 queries
    assert verdict.startswith("B is better by 0.1050 [+0.0")
    assert verdict.endswith("over 20 shared queries), p < 0.001: significant at 5%.")


def test_map_chart_has_error_bars_when_runs_have_intervals(tmp_path: Path) -> None:
    from search_lab.app.charts import map_chart

    runs = _runs_table(tmp_path)
    assert map_chart(runs).to_dict()["mark"]["type"] == "bar"  # no interval: bars only
    runs["map_ci_low"], runs["map_ci_high"] = runs["map"] - 0.05, runs["map"] + 0.05
    spec = map_chart(runs).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "errorbar"]
    assert spec["layer"][0]["encoding"]["y"]["sort"] == ["run-c", "run-a", "run-b"]  # best first


def test_ann_vs_latency_uses_largest_k_and_leaves_exact_runs_out(tmp_path: Path) -> None:
    frame, column = app_runs.ann_vs_latency(_runs_table(tmp_path))
    assert column == "ANN-R@10"
    assert frame[column].tolist() == [0.8]  # the two exact runs report no ANN recall
    assert app_runs.ann_vs_latency(pd.DataFrame({"name": [], "index": []})) is None


def test_ann_vs_latency_tells_methods_apart() -> None:
    runs = pd.DataFrame(
        {
            "name": ["index=faiss_ivf", "index=faiss", "index.ef=50,index=hnsw", "run-x"],
            "index": ["faiss", "faiss", "hnsw", "kdtree"],
            "query_ms_p50": [0.1, 0.2, 0.3, 0.4],
            "ANN-R@10": [0.9, 0.99, 0.98, None],  # kdtree: exact, no ANN recall reported
        }
    )
    frame, column = app_runs.ann_vs_latency(runs)
    assert frame["method"].tolist() == ["faiss_ivf", "faiss", "hnsw"]
    assert frame[column].tolist() == [0.9, 0.99, 0.98]


@pytest.mark.parametrize(
    ("index", "words"),
    [
        ({"name": "kdtree", "eps": 0.0}, "kd-tree (SciPy cKDTree), eps=0.0"),
        (
            {"name": "hnsw", "M": 16, "ef": 50},
            "HNSW graph (hnswlib, NMSLib's algorithm), M=16, ef=50",
        ),
        (
            {"name": "faiss", "factory": "IVF1024,Flat", "nprobe": 16},
            "Faiss (faiss-cpu), IVF1024,Flat, nprobe=16",
        ),
        (
            {"name": "nndescent", "n_neighbors": 30},
            "NN-descent k-NN graph (pynndescent, KGraph's method), 30 neighbours",
        ),
    ],
)
def test_every_search_method_in_words(index: dict, words: str) -> None:
    config = {**CONFIG, "index": index}
    assert app_text.plain_words(config)["index"] == words
    assert len(app_text.method_words(config)) > len(words.partition(",")[0])


def test_build_with_progress_reports_every_image(holidays_dir: Path, tmp_path: Path) -> None:
    import shutil

    from search_lab.app.indexes import build_with_progress
    from tests.conftest import compose_config

    data = tmp_path / "data"
    data.mkdir()
    for name in ("100000.jpg", "100001.jpg", "100100.jpg", "100101.jpg"):
        shutil.copy(holidays_dir / name, data / name)
    cfg = compose_config(
        [f"dataset.root={data}", f"cache_dir={tmp_path / 'c'}", f"index_dir={tmp_path / 'idx'}"],
        "build_index",
    )
    reports: list[tuple[float, str]] = []
    message = build_with_progress(cfg, lambda fraction, text: reports.append((fraction, text)))
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum("/4 images" in text for _, text in reports) == 4
    assert "built" in message and (tmp_path / "idx" / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("100000.jpg", r"100000\.jpg"),
        ("**b** $x$", r"\*\*b\*\* \$x\$"),
        ("[a](h:x) <img src=x>", r"\[a\]\(h\:x\) \<img src\=x\>"),
        (":red[r] :smile:", r"\:red\[r\] \:smile\:"),
        ("a\\b\n# c", r"a\\b \# c"),
        ("é ✓ 100", "é ✓ 100"),
    ],
)
def test_plain_escapes_every_markdown_character(text: str, escaped: str) -> None:
    assert app_text.plain(text) == escaped


def test_plain_table_escapes_labels_and_text_cells() -> None:
    frame = pd.DataFrame({"A: *x*": ["$y$", 1.5]}, index=["_k_", "n"])
    out = app_text.plain_table(frame)
    assert list(out.columns) == [r"A\: \*x\*"]
    assert list(out.index) == [r"\_k\_", "n"]
    assert out.iloc[:, 0].tolist() == [r"\$y\$", 1.5]


def test_chart_labels_show_only_what_differs() -> None:
    names = [
        "feature=hsv,metric=cosine",
        "feature=lbp,metric=cosine",
        "feature=hsv,metric=euclidean",
    ]
    assert app_runs.chart_labels(names) == ["hsv · cosine", "lbp · cosine", "hsv · euclidean"]
    shared = ["dataset=wang,feature=hsv", "dataset=wang,feature=lbp"]
    assert app_runs.chart_labels(shared) == ["hsv", "lbp"]  # what every run shares is left out
    assert app_runs.chart_labels(["index.n_trees=5", "index.search_k=5"]) == [
        "n_trees=5",
        "search_k=5",
    ]  # numbers and flags keep their key
    assert app_runs.chart_labels(["a.x=hsv", "c.x=hsv"]) == ["a.x=hsv", "c.x=hsv"]  # would clash
    assert app_runs.chart_labels(["r1", "r1", "feature=hog"]) == ["r1 #1", "r1 #2", "hog"]
    assert app_runs.chart_labels(["feature.bins=[4,6,2],metric=chi2"]) == ["bins=[4,6,2] · chi2"]
    assert app_runs.chart_labels(["post.pca_dim=128,post.whiten=true", "post.pca_dim=128"]) == [
        "whiten=true",
        "post.pca_dim=128",
    ]
