"""Plain helpers behind the Streamlit app: locations, plain words, scores, overlaps, thumbnails.

Nothing here imports Streamlit, so every function is unit-tested on its own
(``tests/test_app_support.py``); the pages in :mod:`search_lab.app_pages` only lay results out.
Image paths are only ever built from names a loaded index or dataset holds
(:func:`collection_path`), never from text a user typed.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from PIL import Image

from search_lab import indexes
from search_lab.compare import DIFF_PREFIX, common_items, diff_to_baseline, format_cell, name_items
from search_lab.data import Dataset, default_root
from search_lab.engine import (
    Hit,
    SearchEngine,
    build_engine,
    list_engines,
    manifest_of,
    scan_engines,
)
from search_lab.errors import ImageLoadError
from search_lab.images import ImageSource, load_image
from search_lab.metrics import ap_rule, positive_ranks
from search_lab.results import METRICS_FILE, read_json
from search_lab.stats import paired_comparison, shared_values

INDEXES_ENV = "SEARCH_LAB_INDEXES"
OUTPUTS_ENV = "SEARCH_LAB_OUTPUTS"
DEFAULT_INDEXES = Path("indexes")
DEFAULT_OUTPUTS = Path("outputs")
DEFAULT_INDEX_NAME = "hsv-cosine-exact"
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
BUILD_COMMAND = "python -m search_lab.build_index"
FETCH_COMMAND = "python -m search_lab.data fetch"
THUMB_SIDE = 256
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp")
MAX_UPLOAD_MB = 20

FEATURE_WORDS = {
    "hsv": "HSV colour histogram",
    "lbp": "local binary patterns (texture)",
    "hog": "histogram of oriented gradients (shape)",
    "edges": "edge-orientation histogram (shape)",
    "cnn": "CNN embedding",
    "combo": "weighted combination of features",
}
METRIC_WORDS = {
    "cosine": "cosine distance",
    "euclidean": "Euclidean (L2) distance",
    "manhattan": "Manhattan (L1) distance",
    "chi2": "chi-squared distance",
    "dot": "dot-product distance",
}
INDEX_WORDS = {
    "exact": "exact search (every image compared)",
    "annoy": "approximate search (Annoy)",
}

PARAM_WORDS = {
    "factory": "{}",
    "n_trees": "{} trees",
    "M": "M={}",
    "n_neighbors": "{} neighbours",
    "nprobe": "nprobe={}",
    "ef": "ef={}",
    "epsilon": "epsilon={}",
    "eps": "eps={}",
}
"""Index parameters worth showing beside the method's name, and how."""

T = TypeVar("T")


def indexes_dir() -> Path:
    """Folder holding the built indexes: ``$SEARCH_LAB_INDEXES``, else ``indexes``."""
    return Path(os.environ.get(INDEXES_ENV) or DEFAULT_INDEXES)


def outputs_dir() -> Path:
    """Folder holding evaluation runs and sweeps: ``$SEARCH_LAB_OUTPUTS``, else ``outputs``."""
    return Path(os.environ.get(OUTPUTS_ENV) or DEFAULT_OUTPUTS)


@dataclass(frozen=True)
class IndexChoice:
    """A built index folder as the app lists it: path, its manifest's mtime, label and config."""

    path: Path
    mtime_ns: int
    label: str
    config: dict[str, Any]


def index_choices(parent: str | os.PathLike) -> list[IndexChoice]:
    """Every built index under ``parent`` with a plain-words label, sorted by folder name."""
    choices = []
    for path in list_engines(parent):
        manifest = manifest_of(path)
        mtime = (path / "manifest.json").stat().st_mtime_ns
        label = f"{path.name} — {describe(manifest['config'], len(manifest['names']))}"
        choices.append(IndexChoice(path, mtime, label, manifest["config"]))
    return choices


def broken_indexes(parent: str | os.PathLike) -> dict[str, str]:
    """Index folders under ``parent`` that cannot be used (folder name -> the one-line reason)."""
    return {path.name: problem for path, problem in scan_engines(parent)[1].items()}


def plain_words(config: Mapping[str, Any]) -> dict[str, str]:
    """Feature, metric and index type of a config in words, e.g. ``HSV colour histogram``."""
    feature, metric, index = config["feature"], config["metric"], config["index"]
    short = indexes.description(index["name"]).partition(":")[0]
    index_text = INDEX_WORDS.get(index["name"]) or short or f"{index['name']} index"
    index_text += "".join(
        f", {form.format(index[key])}" for key, form in PARAM_WORDS.items() if key in index
    )
    return {
        "feature": FEATURE_WORDS.get(feature["name"], f"{feature['name']} features"),
        "metric": METRIC_WORDS.get(metric["name"], f"{metric['name']} distance"),
        "index": index_text,
    }


def method_words(config: Mapping[str, Any]) -> str:
    """The search method of a config in a sentence (from the registered index class)."""
    return indexes.description(config["index"]["name"])


def describe(config: Mapping[str, Any], n_images: int) -> str:
    """One line: ``HSV colour histogram, cosine distance, exact search (...), 648 images``."""
    words = plain_words(config)
    return f"{words['feature']}, {words['metric']}, {words['index']}, {n_images} images"


def build_command(parent: Path, dataset_env: str | None = None) -> str:
    """The exact shell command that builds the default index into ``parent``.

    ``dataset_env`` is the ``HOLIDAYS_DIR`` the app runs with, repeated so the command reads
    the same dataset.
    """
    prefix = f"HOLIDAYS_DIR={dataset_env} " if dataset_env else ""
    suffix = "" if parent == DEFAULT_INDEXES else f" index_dir={parent / DEFAULT_INDEX_NAME}"
    return f"{prefix}{BUILD_COMMAND}{suffix}"


def default_build_config(parent: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved ``conf/build_index.yaml`` config writing the default index into ``parent``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    wanted = ["progress=false", f"index_dir={parent / DEFAULT_INDEX_NAME}", *overrides]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("build_index", overrides=wanted)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def build_with_progress(cfg: dict[str, Any], report: Callable[[float, str], None]) -> str:
    """Build and save the index ``cfg`` describes, calling ``report(fraction, text)`` as it goes.

    The fraction follows the images extracted (a ``combo`` reports each part in turn); returns
    the closing message.
    """
    report(0.0, "reading the dataset")
    feature = cfg["feature"]["name"]

    def on_image(done: int, total: int) -> None:
        report(0.05 + 0.85 * done / total, f"extracting {feature} features: {done}/{total} images")

    engine = build_engine(cfg, progress=on_image)
    report(0.9, f"saving to {cfg['index_dir']}")
    engine.save(cfg["index_dir"])
    message = f"built {cfg['index_dir']}: {len(engine.manifest['skipped'])} files skipped"
    report(1.0, message)
    return message


def collection_path(root: Path, names: Sequence[str] | frozenset[str], name: str) -> Path:
    """``root / name`` for a name the index or dataset holds; anything else is refused.

    Raises
    ------
    ImageLoadError
        If ``name`` is not one of ``names`` or would lead outside ``root``.
    """
    if name not in names:
        raise ImageLoadError(f"{name!r} is not an image of this collection")
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ImageLoadError(f"{name!r} lies outside the collection folder {root}")
    return path


def thumbnail_jpeg(source: ImageSource, max_side: int = THUMB_SIDE, quality: int = 85) -> bytes:
    """A small JPEG of an image (longer side at most ``max_side``), through the project loader."""
    pixels = load_image(source, max_side=max_side)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def safe_label(name: str, limit: int = 80) -> str:
    """An uploaded file's name fit for one line: control characters replaced, at most ``limit``.

    The name is kept as typed otherwise; pages show it through :func:`plain`.
    """
    cleaned = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", name).strip() or "upload"
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MARKUP = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def plain(text: object) -> str:
    """``text`` escaped so Streamlit's Markdown shows it literally, on one line.

    Every ASCII punctuation character gets a backslash (CommonMark's escape, which Streamlit
    also honours for ``$`` LaTeX, ``:red[...]`` colours, ``:emoji:`` codes and ``<tags>``), and
    line breaks become spaces. Used for every file name, path, config value and error message
    a page shows in headings, captions, messages and tables.
    """
    return _MARKUP.sub(r"\\\1", _CONTROL.sub(" ", str(text)))


def plain_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` for ``st.table`` (which renders Markdown) with every text escaped."""
    out = frame.map(lambda value: plain(value) if isinstance(value, str) else value)
    out.index = [plain(label) for label in frame.index]
    out.columns = [plain(label) for label in frame.columns]
    return out


def dataset_queries(dataset: Dataset, indexed: Sequence[str]) -> list[str]:
    """Names of the dataset's queries that the index holds (so they can be looked up)."""
    held = set(indexed)
    return [dataset.names[q] for q in dataset.queries if dataset.names[q] in held]


def relevant_names(dataset: Dataset, query: str) -> frozenset[str]:
    """Ground truth of a dataset query: the names of its relevant images (empty if not a query)."""
    qid = dataset.names.index(query) if query in dataset.names else -1
    return frozenset(dataset.names[i] for i in dataset.relevant.get(qid, ()))


def query_ap(dataset: Dataset, query: str, ranking: Sequence[str]) -> float | None:
    """Average precision of a full ranking (names, best first) for a dataset query.

    The rule is the dataset protocol's (Holidays trapezoid for instance datasets, standard
    non-interpolated AP for category ones, as ``evaluate`` scores them). The query itself is
    ignored wherever it appears, as in the benchmark; returns None when
    ``query`` has no ground truth. Rank the whole index for an honest figure: relevant images
    missing from ``ranking`` count as never retrieved.
    """
    id_of = {name: i for i, name in enumerate(dataset.names)}
    qid = id_of.get(query)
    if qid is None or qid not in dataset.relevant:
        return None
    relevant = dataset.relevant[qid]
    ids = [id_of[name] for name in ranking if name in id_of]
    return ap_rule(dataset.protocol).per_query(positive_ranks(ids, qid, relevant), len(relevant))


def without_query(hits: Sequence[Hit], query: str) -> list[Hit]:
    """The hits with the query image itself left out and the ranks renumbered from 1."""
    kept = [hit for hit in hits if hit.name != query]
    return [Hit(rank, hit.id, hit.name, hit.distance) for rank, hit in enumerate(kept, start=1)]


@dataclass
class Result:
    """What a query shows: top hits, seconds taken, and for a dataset query its AP and ground truth.

    ``ranked`` is how many images the engine ranked (the whole index for a dataset query).
    """

    hits: list[Hit]
    seconds: float
    ranked: int
    ap: float | None = None
    relevant: frozenset[str] | None = None
    ap_rule: str | None = None  # the AP rule's name (metrics.AP_RULES), for a dataset query


def search(
    engine: SearchEngine,
    source: Path | bytes,
    k: int,
    dataset: Dataset | None = None,
    query: str | None = None,
) -> Result:
    """Top ``k`` hits of ``source``; for a dataset query ``query``, also its AP.

    A dataset query ranks the whole index so the AP is the benchmark's, then shows the top
    ``k`` with the query image itself left out. Raises ImageLoadError for unreadable sources.
    """
    truth = relevant_names(dataset, query) if dataset is not None and query else frozenset()
    depth = len(engine.names) if truth else k
    hits, seconds = engine.query(source, depth)
    hits = [hit for hit in hits if hit.id >= 0]  # an approximate index may pad with -1
    if not truth:
        return Result(hits[:k], seconds, depth)
    ap = query_ap(dataset, query, [hit.name for hit in hits])
    rule = ap_rule(dataset.protocol).name
    return Result(without_query(hits, query)[:k], seconds, depth, ap, truth, rule)


def caption(hit: Hit, relevant: bool | None = None) -> str:
    """Caption of a result thumbnail: rank, file name, distance, and a tick when relevant."""
    mark = "✓ " if relevant else ""
    return f"{mark}#{hit.rank} {hit.name} · d={hit.distance:.4f}"


def overlap(a: Sequence[str], b: Sequence[str]) -> tuple[int, float]:
    """Shared items of two result lists and their Jaccard index |A ∩ B| / |A ∪ B|."""
    set_a, set_b = set(a), set(b)
    union = set_a | set_b
    shared = len(set_a & set_b)
    return shared, (shared / len(union) if union else 1.0)


def overlap_rows(results: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Pairwise overlap of several named result lists: one row per pair."""
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(results.items(), 2):
        shared, jaccard = overlap(a, b)
        rows.append(
            {
                "A": name_a,
                "B": name_b,
                "shared": shared,
                "of": max(len(a), len(b)),
                "jaccard": round(jaccard, 3),
            }
        )
    return rows


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Rows of a grid: ``items`` cut into lists of at most ``size``."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def manifest_row(name: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The overall figures of a built index, one table row (for the Compare page)."""
    words = plain_words(manifest["config"])
    return {
        "index": name,
        "feature": words["feature"],
        "metric": words["metric"],
        "search": words["index"],
        "eval mAP": None,
        "images": len(manifest["names"]),
        "skipped": len(manifest.get("skipped", {})),
        "dim": manifest.get("dim"),
        "extract_s": round(float(manifest.get("extract_s", 0.0)), 2),
        "build_s": round(float(manifest.get("build_s", 0.0)), 3),
        "created": manifest.get("created", ""),
    }


SETUP_KEYS = ("feature", "metric", "index", "post")


def same_setup(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two configs describe the same search (feature, metric, index, post-processing)."""
    return all(a.get(key) == b.get(key) for key in SETUP_KEYS)


def _plain_evaluation(config: Mapping[str, Any]) -> bool:
    """Whether a run ranked plain queries over the whole collection (as the app does).

    A run with distractors scored a larger collection than the index holds: it does not count.
    """
    evaluation = config.get("eval") or {}
    no_distractors = not (config.get("dataset") or {}).get("distractors")
    return not evaluation.get("rotations") and evaluation.get("depth") is None and no_distractors


def matching_run_map(runs: pd.DataFrame, config: Mapping[str, Any]) -> float | None:
    """mAP of the newest run in ``runs`` (a ``load_runs`` table) evaluating ``config``'s search.

    A run matches when its saved config has the same feature, metric, index and
    post-processing, the same dataset folder, and plain queries ranked over the whole
    collection. None when no run matches.
    """
    matches = []
    root = str((config.get("dataset") or {}).get("root"))
    for run, value in zip(runs.get("run", []), runs.get("map", []), strict=True):
        path = Path(run) / METRICS_FILE
        try:
            saved = read_json(path).get("config") or {}
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        same_data = str((saved.get("dataset") or {}).get("root")) == root
        if same_setup(saved, config) and same_data and _plain_evaluation(saved):
            matches.append((mtime, float(value)))
    return max(matches)[1] if matches else None


_PLAIN_VALUE = re.compile(r"(?i)true|false|null|none|[-+\d.\[\], ]+")


def _short_item(item: str) -> str:
    """``feature=hsv`` -> ``hsv``; a number or flag keeps its (last) key: ``whiten=true``."""
    key, sep, value = item.partition("=")
    if not sep:
        return item
    return f"{key.rsplit('.', 1)[-1]}={value}" if _PLAIN_VALUE.fullmatch(value) else value


def chart_labels(names: Sequence[str]) -> list[str]:
    """Short, unique chart labels that show only what differs between runs.

    Items every name shares are dropped; a named choice shows its value alone and a number or
    flag its last key too: ``feature=hsv,metric=cosine`` beside ``feature=lbp,metric=euclidean``
    reads ``hsv · cosine``, ``post.pca_dim=128,post.whiten=true`` reads
    ``pca_dim=128 · whiten=true``. Labels that would then read the same keep their full keys;
    runs with the very same overrides are numbered (``r1 #2``).
    """
    names = [str(n) for n in names]
    common = set(common_items(names))
    kept = [[i for i in name_items(n) if i not in common] for n in names]
    short = [" · ".join(map(_short_item, items)) or n for items, n in zip(kept, names, strict=True)]
    keyed = [" · ".join(items) or n for items, n in zip(kept, names, strict=True)]
    seen = Counter(short)
    labels = [s if seen[s] == 1 else k for s, k in zip(short, keyed, strict=True)]
    repeats, count = Counter(labels), Counter()
    out = []
    for label in labels:
        count[label] += 1
        out.append(label if repeats[label] == 1 else f"{label} #{count[label]}")
    return out


def run_label(row: Mapping[str, Any]) -> str:
    """How a run is offered in a picker: its name and its folder (names can repeat)."""
    return f"{row['name']}  ({Path(str(row['run'])).name})"


def filter_table(
    runs: pd.DataFrame, text: str, choices: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Rows whose name contains ``text`` (any case) and whose columns take one of ``choices``.

    An empty choice list leaves that column unfiltered.
    """
    keep = runs["name"].astype(str).str.contains(text.strip(), case=False, regex=False)
    for column, allowed in choices.items():
        if allowed:
            keep &= runs[column].isin(list(allowed))
    return runs[keep]


def run_pair(runs: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    """Two runs (row positions ``a`` and ``b``) side by side, with B − A for every result.

    Every cell is text formatted like the comparison tables; rows where both runs agree on a
    parameter are kept so the table shows the whole configuration.
    """
    diffed = diff_to_baseline(runs.iloc[[a, b]], 0)  # only the two rows: no test of the others
    label_a, label_b = f"A: {runs['name'].iloc[a]}", f"B: {runs['name'].iloc[b]}"
    if label_a == label_b:
        label_b += " "  # two runs of one configuration still need two columns
    rows = {}
    for column in runs.columns:
        delta = diffed[DIFF_PREFIX + column].iloc[1] if DIFF_PREFIX + column in diffed else None
        rows[str(column)] = {
            label_a: format_cell(str(column), runs[column].iloc[a]),
            label_b: format_cell(str(column), runs[column].iloc[b]),
            "B − A": format_cell(DIFF_PREFIX + str(column), delta),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def pair_verdict(
    runs: pd.DataFrame,
    a: int,
    b: int,
    scores: Mapping[str, Mapping[str, float]],
    *,
    alpha: float = 0.05,
) -> str:
    """Run B against run A (row positions) in words: paired Δ mAP, its 95% interval, p-value.

    ``scores`` maps a ``run`` folder to its per-query APs (``attrs["per_query_ap"]`` of a
    :func:`search_lab.compare.load_runs` table). The runs are paired over the queries both
    have, as in :func:`search_lab.stats.paired_comparison`: e.g. ``"B is better by 0.0310
    [+0.0120, +0.0500] (B − A, 95% interval over 240 shared queries), p = 0.002: significant
    at 5%."``
    """
    missing = [x for x, i in (("A", a), ("B", b)) if not scores.get(str(runs["run"].iloc[i]))]
    if missing:
        return f"No per-query APs saved for run {' and '.join(missing)}: no paired test."
    names, ap_a, ap_b = shared_values(
        scores[str(runs["run"].iloc[a])], scores[str(runs["run"].iloc[b])]
    )
    if not names:
        return "A and B share no query: they cannot be compared query by query."
    if (ap_a == ap_b).all():
        return f"A and B give the same AP on all {len(names)} shared queries: no difference."
    result = paired_comparison(ap_a, ap_b)
    if result.delta == 0.0:
        head = "B and A have the same mean AP"
    else:
        head = f"B is {'better' if result.delta > 0 else 'worse'} by {abs(result.delta):.4f}"
    verdict = "significant" if result.significant(alpha) else "not significant"
    p = "p < 0.001" if result.p_value < 1e-3 else f"p = {result.p_value:.3f}"
    return (
        f"{head} [{result.low:+.4f}, {result.high:+.4f}] (B − A, 95% interval over "
        f"{result.n} shared queries), {p}: {verdict} at {alpha:.0%}."
    )


def ann_vs_latency(runs: pd.DataFrame) -> tuple[pd.DataFrame, str] | None:
    """Points for the ANN-recall-against-latency chart, and the recall column used.

    Uses the largest-k ``ANN-R@k`` column; runs of exact methods count as recall 1. The
    ``method`` column is the index config option a run chose (from its name, e.g.
    ``faiss_ivf``), else the index type. None when no run has an ANN recall.
    """
    ann = [c for c in runs.columns if str(c).startswith("ANN-R@")]
    if not ann or "query_ms_p50" not in runs.columns:
        return None
    column = max(ann, key=lambda c: float(str(c).partition("@")[2]))
    points = runs[["name", "index", "query_ms_p50", column]].copy()
    # evaluate reports ANN recall for every approximate index: a run without one searched
    # exactly (exact, kdtree, faiss Flat) and counts as recall 1
    points.loc[points["query_ms_p50"].notna(), column] = points[column].fillna(1.0)
    option = points["name"].astype(str).str.extract(r"(?:^|,)index=([\w-]+)", expand=False)
    points["method"] = option.fillna(points["index"])  # e.g. faiss_ivf apart from faiss
    points = points.dropna(subset=["query_ms_p50", column])
    return (points, column) if len(points) else None


def skipped_rows(manifests: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """Files each index skipped as unreadable: one row per (index, file) with the reason."""
    return [
        {"index": index, "file": name, "reason": reason}
        for index, manifest in manifests.items()
        for name, reason in sorted(manifest.get("skipped", {}).items())
    ]


AP_WORDS = {
    "holidays_trapezoid": "Holidays AP (trapezoid rule)",
    "standard_noninterpolated": "standard non-interpolated AP",
}


def served_folders() -> list[Path]:
    """Folders the app may read datasets from: ``$HOLIDAYS_DIR`` and every ``conf/dataset``
    config's images folder and labels file folder (e.g. ``$WANG_DIR``), as configured now.

    Every app run asks, so the answer is cached per config files (name, mtime) and environment.
    """
    with os.scandir(CONF_DIR / "dataset") as entries:
        configs = sorted(
            (e.name, e.stat().st_mtime_ns) for e in entries if e.name.endswith(".yaml")
        )
    return list(_served_folders(tuple(configs), tuple(sorted(os.environ.items()))))


@functools.lru_cache(maxsize=16)
def _served_folders(
    configs: tuple[tuple[str, int], ...], environ: tuple[tuple[str, str], ...]
) -> tuple[Path, ...]:
    """:func:`served_folders` for these ``conf/dataset`` files (reading them took ~7 ms a call)."""
    from omegaconf import OmegaConf

    folders = [default_root()]
    for name, _ in configs:
        dataset = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset" / name), resolve=True)
        folders.append(Path(dataset.get("root") or default_root()))
        if dataset.get("labels"):
            folders.append(Path(dataset["labels"]).parent)
    return tuple(dict.fromkeys(folders))


def is_served(path: Path, folders: Sequence[Path]) -> bool:
    """True when ``path`` lies inside one of ``folders`` (both resolved)."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder.resolve()) for folder in folders)


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset lives: its root, layout and (labels layout) its ``file,label`` CSV."""

    root: Path
    layout: str = "auto"
    labels: Path | None = None

    @property
    def label(self) -> str:
        """How the app names it: the root, and the labels file if there is one."""
        return f"{self.root} ({self.labels.name})" if self.labels else str(self.root)


def dataset_sources(
    manifests: Mapping[str, Mapping[str, Any]], default: Path
) -> list[DatasetSource]:
    """The default dataset, then every other one a built index was built on (no repeats)."""
    found, served = [DatasetSource(default)], served_folders()
    for manifest in manifests.values():
        layout = (manifest.get("config", {}).get("dataset") or {}).get("layout", "auto")
        labels = manifest.get("labels")
        source = DatasetSource(
            Path(manifest.get("root", "")), layout, Path(labels) if labels else None
        )
        labels_ok = source.labels is None or is_served(source.labels, served)
        if labels_ok and is_served(source.root, served) and source != found[0]:
            found.append(source)  # a tampered manifest never points the app elsewhere
    return list(dict.fromkeys(found))


def group_sizes(dataset: Dataset) -> dict[str, int]:
    """Number of images in each group of the dataset."""
    sizes: dict[str, int] = {}
    for group in dataset.groups:
        sizes[group] = sizes.get(group, 0) + 1
    return sizes


def runs_signature(root: Path) -> tuple[tuple[str, int], ...]:
    """(path, mtime) of every ``metrics.json`` under ``root``: changes when a run is added."""
    if not root.is_dir():
        return ()
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("metrics.json")))
