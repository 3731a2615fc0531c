"""A built search engine: features + post-processing + index, saved as a self-describing folder.

``build_engine(cfg)`` indexes a dataset; ``engine.save(dir)`` writes the index files, the item
names, the resolved config, the post-processing state, the dimension, the build time and the
dataset fingerprint, atomically; ``SearchEngine.load(dir)`` checks all of it and answers queries.
"""

from __future__ import annotations

import json
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

from search_lab import __version__, indexes
from search_lab.cache import FeatureCache, Features
from search_lab.data import Dataset, load_dataset
from search_lab.errors import ConfigError, DatasetError, IndexMismatchError
from search_lab.extract import Progress, build_extractor, cached_features, load_for
from search_lab.features import Extractor
from search_lab.indexes import Index, search_views
from search_lab.lifeline import owner_tag, remove_stale
from search_lab.postprocess import PostProcessor
from search_lab.results import write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
POST_STATE = "post.npz"
FORMAT = 1


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
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    @property
    def extractor(self) -> Extractor:
        """The feature extractor the index was built with (created on first use)."""
        if self._extractor is None:
            self._extractor = build_extractor(self.config["feature"])
        return self._extractor

    def dataset_changed(self) -> bool:
        """True if the indexed dataset's files (names, sizes, mtimes) differ from build time."""
        layout = self.config.get("dataset", {}).get("layout", "auto")
        try:
            return load_dataset(self.root, layout=layout).fingerprint() != self.manifest.get(
                "fingerprint"
            )
        except DatasetError:
            return True

    def describe(self) -> str:
        """The configuration in plain words: ``hsv features, cosine distance, exact search``."""
        index = self.config["index"]
        extra = f" ({index['n_trees']} trees)" if "n_trees" in index else ""
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

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the engine into ``directory`` atomically: a temporary folder, then a rename."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(directory)
        tmp = Path(
            tempfile.mkdtemp(
                prefix=f".{directory.name}.{owner_tag()}", suffix=".tmp", dir=directory.parent
            )
        )
        tmp.chmod(0o755)  # mkdtemp's 0700 would keep other users' app processes from the mmap
        try:
            self.index.save(tmp)
            np.savez(tmp / POST_STATE, **self.post.state)
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
        cls, directory: str | os.PathLike, *, expect: dict[str, Any] | None = None
    ) -> SearchEngine:
        """Load and check an engine folder; ``expect`` may pin ``feature``, ``metric`` or ``dim``.

        Raises
        ------
        IndexMismatchError
            If the folder is incomplete, of another format, or does not match ``expect``.
        """
        directory = Path(directory)
        if not (directory / MANIFEST).is_file():
            raise IndexMismatchError(
                f"{directory} is not a built index (no {MANIFEST}); "
                "build one with `python -m search_lab.build_index`"
            )
        manifest = manifest_of(directory)
        if manifest.get("format") != FORMAT:
            raise IndexMismatchError(
                f"{directory} has index format {manifest.get('format')}, expected {FORMAT}"
            )
        _check_expectations(directory, manifest, expect or {})
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
        try:
            with np.load(directory / POST_STATE) as state:
                post.state = {k: state[k] for k in state.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:  # missing, truncated, not npz
            raise IndexMismatchError(f"{directory / POST_STATE} is missing or unreadable") from err
        engine = cls(manifest, index, post)
        if engine.dataset_changed():
            log.warning(
                "%s was built from %s as it was then; the files have changed since "
                "(rebuild the index to include them)",
                directory,
                engine.root,
            )
        return engine


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
    """Move ``tmp`` to ``directory``, replacing an older one; never a half-built folder."""
    old = None
    if directory.exists() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
        raise ConfigError(
            f"{directory} exists and is not an index folder: refusing to replace it; "
            "choose another index_dir"
        )
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        os.replace(directory, old)
    os.replace(tmp, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_config(cfg: dict[str, Any]) -> None:
    """Fail before any work on values no component would accept (each raises ConfigError)."""
    ks, ev = cfg["eval"]["k"], cfg["eval"]
    if not isinstance(ks, list) or not ks or not all(_positive_int(k) for k in ks):
        raise ConfigError(f"eval.k must be a list of positive integers, got {ks!r}")
    if ev.get("depth") is not None and not _positive_int(ev["depth"]):
        raise ConfigError(f"eval.depth must be a positive integer or null, got {ev['depth']!r}")
    if not isinstance(ev.get("rotations", False), bool):
        raise ConfigError(f"eval.rotations must be true or false, got {ev['rotations']!r}")
    if cfg.get("workers") is not None and not _positive_int(cfg["workers"]):
        raise ConfigError(f"workers must be a positive integer or null, got {cfg['workers']!r}")
    build_extractor(cfg["feature"])
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
    try:
        return PostProcessor(**cfg.get("post", {}))
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


def index_collection(cfg: dict[str, Any], progress: Progress | None = None) -> Collection:
    """Check ``cfg``, get its dataset's features (cache first), fit the chain, build the index."""
    check_config(cfg)
    data = load_dataset(cfg["dataset"]["root"], layout=cfg["dataset"].get("layout", "auto"))
    cache = FeatureCache(cfg["cache_dir"]) if cfg.get("cache_dir") else None
    fingerprint = data.fingerprint()
    start = time.perf_counter()
    feats, cached = cached_features(
        cache,
        data.root,
        data.names,
        fingerprint,
        cfg["feature"],
        workers=cfg.get("workers"),
        progress=cfg.get("progress", True) if progress is None else progress,
    )
    extract_s = time.perf_counter() - start
    if len(feats.names) == 0:
        raise ConfigError(f"no image of {data.root} could be read")
    start = time.perf_counter()
    post = make_post(cfg)
    vectors = post.fit_transform(feats.vectors)
    index = make_index(cfg)
    index.build(vectors)
    build_s = time.perf_counter() - start
    return Collection(
        data, fingerprint, cache, feats, cached, post, vectors, index, extract_s, build_s
    )


def build_engine(cfg: dict[str, Any], progress: Progress | None = None) -> SearchEngine:
    """Extract (or read cached) features of the configured dataset and index them.

    ``progress`` overrides ``cfg["progress"]`` (see :func:`search_lab.extract.extract_files`).
    """
    col = index_collection(cfg, progress)
    manifest = {
        "format": FORMAT,
        "version": __version__,
        "config": cfg,
        "root": str(col.data.root.resolve()),
        "names": col.features.names,
        "skipped": col.features.skipped,
        "dim": int(col.vectors.shape[1]),
        "fingerprint": col.fingerprint,
        "build_s": col.build_s,
        "extract_s": col.features.seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return SearchEngine(manifest, col.index, col.post)


def list_engines(parent: str | os.PathLike) -> list[Path]:
    """Index folders under ``parent`` with a readable manifest, sorted by name.

    A folder whose manifest cannot be read is left out with a warning, so one broken index
    never hides the others.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    found = []
    for path in sorted(p for p in parent.iterdir() if (p / MANIFEST).is_file()):
        if path.name.startswith("."):
            continue
        try:
            manifest_of(path)
        except IndexMismatchError as err:
            log.warning("%s", err)
            continue
        found.append(path)
    return found


def manifest_of(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an index folder, without loading it (IndexMismatchError if unreadable)."""
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise IndexMismatchError(
            f"{path} is unreadable, it cannot be read as JSON ({err}); rebuild the index"
        ) from err
