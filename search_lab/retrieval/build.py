"""Build a search engine from a configuration: extract (or read cached) features, fit, index.

The folder it is saved into is :mod:`search_lab.retrieval.index_folder`'s; the manifest written
with it is :func:`new_manifest`'s.
"""

from __future__ import annotations

import time
from typing import Any

from search_lab import __version__
from search_lab.core import FORMAT, ConfigError
from search_lab.data import Dataset
from search_lab.retrieval.cache import Features
from search_lab.retrieval.collection import index_collection
from search_lab.retrieval.engine import SearchEngine
from search_lab.retrieval.extract import Progress
from search_lab.retrieval.pipeline import DatasetSpec, Pipeline, build_pipeline


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
