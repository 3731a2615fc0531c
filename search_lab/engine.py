"""A built search engine: features + post-processing + index, saved as a self-describing folder.

``build_engine(cfg)`` indexes a dataset; ``engine.save(dir)`` writes the index files, the item
names, the resolved config, the post-processing state, the dimension, the build time and the
dataset fingerprint, atomically; ``SearchEngine.load(dir)`` checks all of it and answers queries.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search_lab import __version__, distractors, indexes, integrity, swap
from search_lab.cache import FeatureCache, Features
from search_lab.data import Dataset, load_dataset
from search_lab.errors import ConfigError, DatasetError, IndexMismatchError
from search_lab.extract import (
    RUNTIME_PARAMS,
    Progress,
    build_extractor,
    cached_features,
    load_for,
)
from search_lab.features import Extractor
from search_lab.indexes import Index, search_views
from search_lab.lifeline import owner_tag, remove_stale
from search_lab.manifest import (
    FORMAT,
    MANIFEST,
    REBUILD,
    manifest_of,
    names_problem,
    path_in,
    root_problem,
)
from search_lab.postprocess import PostProcessor
from search_lab.results import write_json
from search_lab.splits import split_dataset

log = logging.getLogger(__name__)

POST_STATE = "post.npz"


@dataclass
class Hit:
    """One search result: rank (from 1), item id, file name relative to the root, distance."""

    rank: int
    id: int
    name: str
    distance: float


@dataclass
class SearchEngine:
    """An index over a collection plus everything needed to turn a query image into a vector."""

    manifest: dict[str, Any]
    index: Index
    post: PostProcessor
    _extractor: Extractor | None = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        return self.manifest["names"]

    @property
    def root(self) -> Path:
        return Path(self.manifest["root"])

    @property
    def labels(self) -> Path | None:
        """The ``file,label`` CSV of a labels-layout collection (None for other layouts)."""
        labels = self.manifest.get("labels")
        return Path(labels) if labels else None

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    @property
    def extractor(self) -> Extractor:
        """The feature extractor the index was built with (created on first use)."""
        if self._extractor is None:
            self._extractor = build_extractor(self.config["feature"])
        return self._extractor

    def path_of(self, name: str) -> Path:
        """Path of an indexed image: ``root / name``, names being checked at load."""
        return path_in(self.root, name)

    def dataset_changed(self) -> bool:
        """True if the indexed dataset's files (names, sizes, mtimes) differ from build time."""
        layout = self.config.get("dataset", {}).get("layout", "auto")
        try:
            data = load_dataset(self.root, layout=layout, labels=self.labels)
            return data.fingerprint() != self.manifest.get("fingerprint")
        except DatasetError:
            return True

    def describe(self) -> str:
        """The configuration in plain words: ``hsv features, cosine distance, exact search``."""
        index = self.config["index"]
        shown = indexes.INDEXES.describe(index["name"]).values(index)
        extra = f" ({', '.join(shown)})" if shown else ""
        return (
            f"{self.config['feature']['name']} features, {self.config['metric']['name']} distance, "
            f"{index['name']} search{extra}, {len(self.names)} images"
        )

    def vectorize(
        self, source: str | os.PathLike | bytes, rotations: bool = False
    ) -> list[np.ndarray]:
        """Post-processed descriptor of a query image (and of its 90/180/270-degree turns)."""
        turns = (0, 1, 2, 3) if rotations else (0,)
        images = [load_for(self.extractor, source, t) for t in turns]
        return [self.post.transform(v) for v in self.extractor.extract_batch(images)]

    def search_vectors(self, views: list[np.ndarray], k: int) -> list[Hit]:
        """Top-k hits for a query given as one or more post-processed views."""
        ids, dists = search_views(self.index, [np.atleast_2d(v) for v in views], k)
        found = [
            (int(i), float(d)) for i, d in zip(ids[0], dists[0], strict=True) if i >= 0
        ]  # -1: padding
        return [Hit(r + 1, i, self.names[i], d) for r, (i, d) in enumerate(found)]

    def query(
        self, source: str | os.PathLike | bytes, k: int = 10, *, rotations: bool = False
    ) -> tuple[list[Hit], float]:
        """Top-k hits for an image file or bytes, and the seconds taken (extraction included)."""
        start = time.perf_counter()
        hits = self.search_vectors(self.vectorize(source, rotations), k)
        return hits, time.perf_counter() - start

    def save(self, directory: str | os.PathLike, staged: Path | None = None) -> Path:
        """Write the engine into ``directory`` atomically: a temporary folder, then a rename.

        ``staged`` is a folder from :func:`staging_dir` the index was already built into.
        """
        directory = Path(directory)
        tmp = staged or staging_dir(directory)
        try:
            self.index.save(tmp)
            np.savez(tmp / POST_STATE, **self.post.state)
            self.manifest["files"] = integrity.record(tmp, skip=frozenset({MANIFEST}))
            write_json(
                tmp / MANIFEST, self.manifest
            )  # written last: its presence marks completeness
            _replace_dir(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        *,
        expect: dict[str, Any] | None = None,
        verify: bool = True,
        rehash: bool = False,
        roots: list[str | os.PathLike] | None = None,
    ) -> SearchEngine:
        """Load and check an engine folder; ``expect`` may pin ``feature``, ``metric`` or ``dim``.

        Every data file is checked against the size and XXH3-128 checksum recorded when it was
        written (``verify=False``: sizes only, no byte read); files unchanged since they were
        last verified are not re-hashed unless ``rehash``. With ``roots``, the dataset
        folder must lie inside one of them or inside ``directory``; image names never lead
        outside the dataset folder.

        Raises
        ------
        IndexMismatchError
            If the folder is incomplete, damaged, of another format, points outside the
            allowed folders, or does not match ``expect``.
        """
        directory = Path(directory)
        swap.recover(directory)
        manifest = manifest_of(directory)
        _check_expectations(directory, manifest, expect or {})
        _check_confined(directory, manifest, roots)
        if problem := integrity.problem(directory, manifest["files"], full=verify, rehash=rehash):
            raise IndexMismatchError(f"{problem}; {REBUILD}")
        cfg = manifest["config"]
        index = make_index(cfg)
        index.load(directory)
        if index.dim != manifest["dim"] or index.size != len(manifest["names"]):
            raise IndexMismatchError(
                f"{directory}: index holds {index.size} vectors of dimension {index.dim}, "
                "manifest says "
                f"{len(manifest['names'])} of dimension {manifest['dim']}"
            )
        post = make_post(cfg)
        post.state = _read_post_state(directory)
        engine = cls(manifest, index, post)
        if engine.dataset_changed():
            log.warning(
                "%s was built from %s as it was then; the files have changed since "
                "(rebuild the index to include them)",
                directory,
                engine.root,
            )
        return engine


def staging_dir(directory: Path) -> Path:
    """A new empty folder beside ``directory`` that :meth:`SearchEngine.save` renames into it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(directory)
    tmp = Path(
        tempfile.mkdtemp(
            prefix=f".{directory.name}.{owner_tag()}", suffix=".tmp", dir=directory.parent
        )
    )
    tmp.chmod(0o755)  # mkdtemp's 0700 would keep other users' app processes from the mmap
    return tmp


def _read_post_state(directory: Path) -> dict[str, np.ndarray]:
    """The fitted post-processing state saved in an index folder."""
    try:
        with np.load(directory / POST_STATE) as state:
            return {k: state[k] for k in state.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:  # missing, truncated, not npz
        raise IndexMismatchError(f"{directory / POST_STATE} is missing or unreadable") from err


def _check_confined(
    directory: Path, manifest: dict[str, Any], roots: list[str | os.PathLike] | None
) -> None:
    """Refuse a manifest whose dataset folder or image names lead where they must not."""
    problem = names_problem(manifest["names"])
    if problem is None and roots is not None:
        problem = root_problem(Path(manifest["root"]), [*roots, directory])
    if problem:
        raise IndexMismatchError(f"{directory}: {problem}")


def _check_expectations(directory: Path, manifest: dict[str, Any], expect: dict[str, Any]) -> None:
    """Raise IndexMismatchError naming the first expected value the manifest contradicts."""
    actual = {
        "feature": manifest["config"]["feature"],
        "metric": manifest["config"]["metric"]["name"],
        "dim": manifest["dim"],
    }
    for key, wanted in expect.items():
        if wanted is not None and actual[key] != wanted:
            raise IndexMismatchError(
                f"{directory} was built with {key} {actual[key]!r}, but {wanted!r} was asked for"
            )


def _remove_stale(directory: Path, age_s: float = 600.0) -> None:
    """Delete temp folders of killed builds of ``directory`` (writer dead, or ``age_s`` old)."""
    prefix = f".{directory.name}."  # no glob: folder names may hold ``*`` or ``[``
    temps = [p for p in directory.parent.iterdir() if p.name.startswith(prefix)]
    remove_stale([p for p in temps if p.name.endswith(".tmp")], age_s)


def _replace_dir(tmp: Path, directory: Path) -> None:
    """Move ``tmp`` to ``directory``, replacing an older one; never a half-built or missing one."""
    swap.recover(directory)
    swap.discard_aside(directory)
    if directory.exists() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
        raise ConfigError(
            f"{directory} exists and is not an index folder: refusing to replace it; "
            "choose another index_dir"
        )
    swap.replace_dir(tmp, directory)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_config(cfg: dict[str, Any]) -> None:
    """Fail before any work on values no component would accept (each raises ConfigError)."""
    ks, ev = cfg["eval"]["k"], cfg["eval"]
    if not isinstance(ks, list) or not ks or not all(_positive_int(k) for k in ks):
        raise ConfigError(f"eval.k must be a list of positive integers, got {ks!r}")
    for key in ("depth", "max_queries"):
        if ev.get(key) is not None and not _positive_int(ev[key]):
            raise ConfigError(f"eval.{key} must be a positive integer or null, got {ev[key]!r}")
    if not isinstance(ev.get("rotations", False), bool):
        raise ConfigError(f"eval.rotations must be true or false, got {ev['rotations']!r}")
    if cfg.get("workers") is not None and not _positive_int(cfg["workers"]):
        raise ConfigError(f"workers must be a positive integer or null, got {cfg['workers']!r}")
    extractor = build_extractor(cfg["feature"])
    if (cfg.get("executor") or {}).get("name", "local") == "local":
        extractor.prepare()  # weights missing here: one line now (Ray workers load their own)
    make_index(cfg)
    post = make_post(cfg)
    if cfg["metric"]["name"] == "chi2" and post.pca_dim is not None:
        raise ConfigError(
            "metric chi2 needs non-negative histograms; PCA (post.pca_dim) makes "
            "negative values: use another metric or drop post.pca_dim"
        )


def make_index(cfg: dict[str, Any]) -> Index:
    """The empty index described by ``cfg["index"]`` and ``cfg["metric"]``."""
    params = dict(cfg["index"])
    return indexes.create(params.pop("name"), metric=cfg["metric"]["name"], **params)


def make_post(cfg: dict[str, Any]) -> PostProcessor:
    """The (unfitted) post-processing chain described by ``cfg["post"]``."""
    params = {k: v for k, v in cfg.get("post", {}).items() if k != "fit_on"}
    try:
        return PostProcessor(**params)
    except TypeError as err:
        raise ConfigError(f"post: {err}") from err


@dataclass
class Collection:
    """A dataset's features, post-processed and indexed: what evaluation and the app both need."""

    data: Dataset
    fingerprint: str  # of the dataset's file list, computed once (it stats every file)
    cache: FeatureCache | None
    features: Features
    cached: bool
    post: PostProcessor
    vectors: np.ndarray
    index: Index
    extract_s: float
    build_s: float
    n_distractors: int = 0  # the last rows of ``features`` (dataset.distractors)


def dataset_of_config(dataset: dict[str, Any]) -> Dataset:
    """The dataset a ``dataset`` config section names (root, layout, labels CSV)."""
    return load_dataset(
        dataset["root"], layout=dataset.get("layout", "auto"), labels=dataset.get("labels")
    )


def index_collection(cfg: dict[str, Any], progress: Progress | None = None) -> Collection:
    """Check ``cfg``, get its dataset's features (cache first), fit the chain, build the index.

    Features are extracted (or read from the cache) for the whole dataset, so every side of a
    split and every subset reuses one cache entry; only the chosen side is indexed.
    """
    check_config(cfg)
    full = dataset_of_config(cfg["dataset"])
    data = split_dataset(full, **split_options(cfg["dataset"]))
    check_subsets(cfg["eval"], data)
    picked = distractors.chosen(cfg, full)  # checked before any extraction
    fit_on = fit_on_source(cfg)
    cache = FeatureCache(cfg["cache_dir"]) if cfg.get("cache_dir") else None
    fingerprint = full.fingerprint()
    start = time.perf_counter()
    feats, cached = feature_source(cfg)(
        cache,
        full.root,
        full.names,
        fingerprint,
        cfg["feature"],
        workers=cfg.get("workers"),
        progress=cfg.get("progress", True) if progress is None else progress,
    )
    feats = feats.restricted(data.names)
    if len(feats.names) == 0:
        raise ConfigError(f"no image of {data.root} could be read")
    n_distractors = 0
    if picked is not None:
        shown = cfg.get("progress", True) if progress is None else progress
        options = {"workers": cfg.get("workers"), "progress": shown}
        extra = distractors.features(cache, *picked, cfg["feature"], **options)
        data, feats = distractors.with_distractors(data, feats, extra)
        n_distractors = len(extra.names)
    extract_s = time.perf_counter() - start
    post = fitted_post(cfg, fit_on, cache, progress)
    start = time.perf_counter()
    vectors, index = fit_and_index(cfg, feats.vectors, post)
    build_s = time.perf_counter() - start
    return Collection(
        data,
        fingerprint,
        cache,
        feats,
        cached,
        post,
        vectors,
        index,
        extract_s,
        build_s,
        n_distractors,
    )


def _ray_features(ex: dict[str, Any]) -> Any:
    from search_lab.ray_executor import RayExecutor

    return RayExecutor(ex).cached_features


EXECUTORS: dict[str, Any] = {"local": lambda ex: cached_features, "ray": _ray_features}
"""``executor.name`` -> the ``cached_features`` of that executor (given the executor config)."""


def feature_source(cfg: dict[str, Any]) -> Any:
    """``cached_features`` of the configured executor (``executor=local``: this machine)."""
    ex = cfg.get("executor") or {"name": "local"}
    if ex.get("name") not in EXECUTORS:
        raise ConfigError(
            f"unknown executor {ex.get('name')!r}; choose one of: {', '.join(sorted(EXECUTORS))}"
        )
    return EXECUTORS[ex["name"]](ex)


def split_options(dataset_cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``split_dataset`` arguments of a dataset config (no split when absent)."""
    return {
        "side": dataset_cfg.get("split", "all"),
        "fraction": dataset_cfg.get("split_fraction", 0.5),
        "seed": dataset_cfg.get("split_seed", 0),
    }


def check_subsets(eval_cfg: dict[str, Any], data: Dataset) -> None:
    """ConfigError unless ``eval.subsets`` / ``eval.subset_groups`` fit the dataset."""
    count, groups = eval_cfg.get("subsets") or 0, eval_cfg.get("subset_groups", 60)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"eval.subsets must be a non-negative integer, got {count!r}")
    if count and not _positive_int(groups):
        raise ConfigError(f"eval.subset_groups must be a positive integer, got {groups!r}")
    if count and groups > len(set(data.groups)):
        raise ConfigError(
            f"eval.subset_groups={groups} is more than the {len(set(data.groups))} groups "
            f"of {data.root}"
        )


def fit_and_index(
    cfg: dict[str, Any], raw: np.ndarray, post: PostProcessor
) -> tuple[np.ndarray, Index]:
    """Post-process ``raw`` (fitting ``post`` on it unless already fitted) and index the result."""
    vectors = post.transform(raw) if post.fitted else post.fit_transform(raw)
    index = make_index(cfg)
    index.build(vectors)
    return vectors, index


def fit_on_source(cfg: dict[str, Any]) -> Path | None:
    """The checked ``post.fit_on`` folder: a built index or a dataset folder (None if unset).

    Raises ConfigError before any extraction if the folder is missing, or is an index built with
    other features or another post-processing chain.
    """
    source = cfg.get("post", {}).get("fit_on")
    if source is None:
        return None
    if cfg["post"].get("expand"):
        raise ConfigError(
            "post.expand draws on the indexed collection itself: it cannot be learned on "
            "post.fit_on; drop one of them"
        )
    path = Path(source)
    if not path.is_dir():
        raise ConfigError(f"post.fit_on: {path} is not a folder (a built index or a dataset)")
    if not (path / MANIFEST).is_file():
        return path
    built = manifest_of(path)["config"]
    ours, theirs = _identity(cfg["feature"]), _identity(built["feature"])
    if ours != theirs:
        raise ConfigError(
            f"post.fit_on: {path} was built with other features ({theirs['name']} "
            f"{theirs}) than this run's ({ours['name']} {ours})"
        )
    chain = {k: v for k, v in cfg["post"].items() if k != "fit_on"}
    if {k: v for k, v in built.get("post", {}).items() if k != "fit_on"} != chain:
        raise ConfigError(
            f"post.fit_on: {path} was built with another post-processing chain "
            f"({built.get('post')}); use the same post.* settings"
        )
    return path


def _identity(feature_cfg: dict[str, Any]) -> dict[str, Any]:
    """A feature config without its runtime options (threads, batch size), parts included."""
    return {
        k: _identity(v) if isinstance(v, dict) else v
        for k, v in feature_cfg.items()
        if k not in RUNTIME_PARAMS
    }


def fitted_post(
    cfg: dict[str, Any], fit_on: Path | None, cache: FeatureCache | None, progress: Progress | None
) -> PostProcessor:
    """The chain of ``cfg``: unfitted, or learned on ``fit_on`` (an index's state or a dataset)."""
    post = make_post(cfg)
    if fit_on is None:
        return post
    if (fit_on / MANIFEST).is_file():
        post.state = SearchEngine.load(fit_on).post.state  # every file of it verified
        return post
    other = load_dataset(fit_on)
    feats, _ = cached_features(
        cache,
        other.root,
        other.names,
        other.fingerprint(),
        cfg["feature"],
        workers=cfg.get("workers"),
        progress=cfg.get("progress", True) if progress is None else progress,
    )
    if len(feats.names) == 0:
        raise ConfigError(f"post.fit_on: no image of {fit_on} could be read")
    return post.fit(feats.vectors)


def check_buildable(cfg: dict[str, Any]) -> None:
    """ConfigError for settings that are for evaluation only (an index serves the dataset)."""
    if cfg["dataset"].get("distractors"):
        raise ConfigError(
            "dataset.distractors is for evaluation (python -m search_lab.evaluate); "
            "build_index indexes the dataset alone: drop it"
        )


def new_manifest(cfg: dict[str, Any], data: Dataset, features: Features, **built: Any) -> dict:
    """An index folder's manifest: config, dataset, names, skipped files and ``built`` figures
    (``dim``, ``fingerprint``, ``build_s``)."""
    return {
        "format": FORMAT,
        "version": __version__,
        "config": cfg,
        "root": str(data.root.resolve()),
        "labels": str(data.labels.resolve()) if data.labels else None,
        "names": features.names,
        "skipped": features.skipped,
        "dim": int(built["dim"]),
        "fingerprint": built["fingerprint"],
        "build_s": built["build_s"],
        "extract_s": features.seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def build_engine(cfg: dict[str, Any], progress: Progress | None = None) -> SearchEngine:
    """Extract (or read cached) features of the configured dataset and index them.

    ``progress`` overrides ``cfg["progress"]`` (see :func:`search_lab.extract.extract_files`).
    """
    check_buildable(cfg)
    col = index_collection(cfg, progress)
    manifest = new_manifest(
        cfg, col.data, col.features, dim=col.vectors.shape[1], fingerprint=col.fingerprint,
        build_s=col.build_s,
    )  # fmt: skip
    return SearchEngine(manifest, col.index, col.post)


def list_engines(parent: str | os.PathLike) -> list[Path]:
    """Index folders under ``parent`` with a sound manifest, sorted by name.

    A folder whose manifest cannot be read or has the wrong shape is left out with a warning
    (see :func:`scan_engines`), so one broken index never hides the others.
    """
    good, broken = scan_engines(parent)
    for problem in broken.values():
        log.warning("%s", problem)
    return good


def scan_engines(parent: str | os.PathLike) -> tuple[list[Path], dict[Path, str]]:
    """Index folders under ``parent``: those with a sound manifest, and the others' problems."""
    parent = Path(parent)
    if not parent.is_dir():
        return [], {}
    swap.recover_all(parent)
    good, broken = [], {}
    for path in sorted(p for p in parent.iterdir() if (p / MANIFEST).is_file()):
        if path.name.startswith("."):
            continue
        try:
            manifest_of(path)
        except IndexMismatchError as err:
            broken[path] = str(err)
            continue
        good.append(path)
    return good, broken
