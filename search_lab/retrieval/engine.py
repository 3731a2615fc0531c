"""The query object: an index, its post-processing and its extractor, loaded from or saved to a
folder.

``engine.save(dir)`` writes the index files, the item names, the resolved config, the
post-processing state, the dimension, the build time and the dataset fingerprint, atomically;
``SearchEngine.load(dir)`` checks all of it and answers queries. Building one is
:mod:`search_lab.retrieval.build`'s job; the folder's life (staging, replacing, listing) is
:mod:`search_lab.retrieval.index_folder`'s.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search_lab import indexes
from search_lab.core import (
    MANIFEST,
    REBUILD,
    DatasetError,
    IndexMismatchError,
    integrity,
    manifest_of,
    ownership,
    path_in,
    swap,
    write_json,
)
from search_lab.data import load_dataset
from search_lab.features import Extractor, PostProcessor
from search_lab.indexes import Index, search_views
from search_lab.retrieval.extract import build_extractor, vectors_of
from search_lab.retrieval.index_folder import (
    check_confined,
    check_expectations,
    replace_dir,
    staging_dir,
)
from search_lab.retrieval.index_identity import summary_params
from search_lab.retrieval.pipeline import make_index, make_post
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
            replace_dir(tmp, directory)
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
        check_dataset: bool = True,
    ) -> SearchEngine:
        """Load and check an engine folder; ``expect`` may pin ``feature``, ``metric`` or ``dim``.

        Every data file is checked against the size and XXH3-128 checksum recorded when it was
        written (``verify=False``: sizes only, no byte read); files unchanged since they were
        last verified are not re-hashed unless ``rehash``. With ``roots``, the dataset
        folder must lie inside one of them or inside ``directory``; image names never lead
        outside the dataset folder. ``check_dataset=False`` skips the warning about a dataset
        folder changed since the build (a walk of the whole folder), for a caller that has just
        compared them itself.

        Raises
        ------
        IndexMismatchError
            If the folder is incomplete, damaged, of another format, points outside the
            allowed folders, or does not match ``expect``.
        """
        directory = Path(directory)
        swap.recover(directory)
        manifest = manifest_of(directory)
        check_expectations(directory, manifest, expect or {})
        check_confined(directory, manifest, roots)
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
        if check_dataset and engine.dataset_changed():
            log.warning(
                "%s was built from %s as it was then; the files have changed since "
                "(rebuild the index to include them)",
                directory,
                engine.root,
            )
        return engine
