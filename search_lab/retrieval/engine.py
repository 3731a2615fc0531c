"""A built search engine: features + post-processing + index, saved as a self-describing folder.

``build_engine(pipeline)`` indexes a dataset; ``engine.save(dir)`` writes the index files, the item
names, the resolved config, the post-processing state, the dimension, the build time and the
dataset fingerprint, atomically; ``SearchEngine.load(dir)`` checks all of it and answers queries.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search_lab import __version__, indexes
from search_lab.core import integrity, ownership, swap
from search_lab.core.errors import ConfigError, DatasetError, IndexMismatchError
from search_lab.core.lifeline import is_tagged, owner_tag, remove_stale
from search_lab.core.manifest import (
    FORMAT,
    MANIFEST,
    REBUILD,
    manifest_of,
    names_problem,
    path_in,
    root_problem,
)
from search_lab.core.results import write_json
from search_lab.data.datasets import Dataset, load_dataset
from search_lab.features import Extractor
from search_lab.features.postprocess import PostProcessor
from search_lab.indexes import Index, search_views
from search_lab.retrieval.cache import Features
from search_lab.retrieval.collection import (  # noqa: F401  (re-exported: callers import them from here)
    Collection,
    fit_and_index,
    fit_on_source,
    index_collection,
)
from search_lab.retrieval.extract import Progress, build_extractor, vectors_of
from search_lab.retrieval.index_identity import summary_params
from search_lab.retrieval.pipeline import (
    DatasetSpec,
    Pipeline,
    build_pipeline,
    make_index,
    make_post,
)
from search_lab.retrieval.post_state import POST_STATE, check_listed, check_post, read_post_state

log = logging.getLogger(__name__)


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
        index = summary_params(self.config["index"], self.manifest.get("built"))
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
        return [self.post.transform(v) for v in vectors_of(self.extractor, source, turns)]

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
            self.manifest["built"] = self.index.built_params()  # e.g. the IVF lists built
            np.savez(tmp / POST_STATE, **self.post.state)
            self.manifest["files"] = integrity.record(tmp, skip=frozenset({MANIFEST}))
            self.manifest[ownership.MARKER_KEY] = ownership.MARKER
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
        index.refuse_legacy(directory)
        check_listed(directory, manifest, (*index.data_files(), POST_STATE))
        index.load(directory)
        if index.dim != manifest["dim"] or index.size != len(manifest["names"]):
            raise IndexMismatchError(
                f"{directory}: index holds {index.size} vectors of dimension {index.dim}, "
                "manifest says "
                f"{len(manifest['names'])} of dimension {manifest['dim']}"
            )
        post = make_post(cfg)
        post.state = read_post_state(directory)
        check_post(directory, post, manifest["dim"])
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
    remove_stale([p for p in temps if p.name.endswith(".tmp") and is_tagged(p)], age_s)


def _replace_dir(tmp: Path, directory: Path) -> None:
    """Move ``tmp`` to ``directory``, replacing an older one; never a half-built or missing one."""
    swap.recover(directory)
    swap.discard_aside(directory)
    check_replaceable(directory)
    swap.replace_dir(tmp, directory)


def check_replaceable(directory: Path) -> None:
    """ConfigError unless ``directory`` is absent, empty or an index folder this project wrote.

    Called before any work by ``build_index`` and again right before the replacement.
    """
    if problem := ownership.folder_problem(directory):
        raise ConfigError(
            f"{directory} is not an index folder search_lab wrote: {problem}; refusing to "
            "replace it (nothing was deleted): choose another index_dir"
        )


def check_config(cfg: dict[str, Any]) -> None:
    """Fail before any work on values no component would accept (each raises ConfigError)."""
    build_pipeline(cfg)


def dataset_of_config(dataset: dict[str, Any]) -> Dataset:
    """The dataset a ``dataset`` config section names (root, layout, labels CSV)."""
    return DatasetSpec.from_config(dataset).load()


def check_buildable(pipe: Pipeline) -> None:
    """ConfigError for settings that are for evaluation only (an index serves the dataset)."""
    if pipe.dataset.distractors:
        raise ConfigError(
            "dataset.distractors is for evaluation (python -m search_lab.evaluate); "
            "build_index indexes the dataset alone: drop it"
        )


def new_manifest(pipe: Pipeline, data: Dataset, features: Features, **built: Any) -> dict:
    """An index folder's manifest: config, dataset, names and skipped files of ``features``,
    and the ``built`` figures (``dim``, ``fingerprint``, ``build_s``)."""
    return {
        "format": FORMAT,
        "version": __version__,
        "config": pipe.config,
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


def build_engine(run: Pipeline | dict[str, Any], progress: Progress | None = None) -> SearchEngine:
    """Extract (or read cached) features of the configured dataset and index them.

    ``run`` is the pipeline (or the config it is built from, with ``progress`` overriding
    ``cfg["progress"]``; see :func:`search_lab.retrieval.extract.extract_files`).
    """
    pipe = run if isinstance(run, Pipeline) else build_pipeline(run, progress)
    check_buildable(pipe)
    col = index_collection(pipe)
    manifest = new_manifest(
        pipe, col.data, col.features, dim=col.vectors.shape[1], fingerprint=col.fingerprint,
        build_s=col.build_s,
    )  # fmt: skip
    return SearchEngine(manifest, col.index, col.post, pipe.extractor)


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
