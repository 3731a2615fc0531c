"""A dataset's features, post-processed and indexed: what evaluation and index building share.

:func:`index_collection` takes a :class:`~search_lab.retrieval.pipeline.Pipeline` (the components
built once from the config) and returns a :class:`Collection`: features extracted or read from the
cache for the whole dataset, the chain fitted, the configured side indexed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.core import MANIFEST, ConfigError, manifest_of
from search_lab.data import Dataset, check_groups, distractors, load_dataset
from search_lab.features import PostProcessor
from search_lab.indexes import Index
from search_lab.retrieval.cache import FeatureCache, Features
from search_lab.retrieval.distractor_features import distractor_features, with_distractors
from search_lab.retrieval.extract import identity
from search_lab.retrieval.pipeline import Pipeline, build_pipeline
from search_lab.retrieval.post_state import verified_post_state


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


def as_pipeline(run: Pipeline | Mapping[str, Any]) -> Pipeline:
    """``run`` itself, or the pipeline its config describes (for callers holding a config)."""
    return run if isinstance(run, Pipeline) else build_pipeline(run)


def index_collection(run: Pipeline | Mapping[str, Any]) -> Collection:
    """Get the dataset's features (cache first), fit the chain, build the index.

    Features are extracted (or read from the cache) for the whole dataset, so every side of a
    split and every subset reuses one cache entry; only the chosen side is indexed.
    """
    pipe = as_pipeline(run)
    full = pipe.dataset.load()
    data = pipe.dataset.side(full)
    check_subsets(pipe, data)
    picked = distractors.chosen(  # every check before extraction
        pipe.dataset.distractors,
        full,
        seed=pipe.eval.distractor_seed,
        counts=pipe.eval.distractor_counts,
        subsets=bool(pipe.eval.subsets),
    )
    fit_on = fit_on_source(pipe)
    fingerprint = full.fingerprint()
    start = time.perf_counter()
    feats, cached = pipe.features(full.root, list(full.names), fingerprint)
    feats = feats.restricted(data.names)
    if len(feats.names) == 0:
        raise ConfigError(f"no image of {data.root} could be read")
    n_distractors = 0
    if picked is not None:
        extra = distractor_features(pipe, *picked)
        data, feats = with_distractors(data, feats, extra)
        n_distractors = len(extra.names)
    extract_s = time.perf_counter() - start
    post = fitted_post(pipe, fit_on)
    start = time.perf_counter()
    vectors, index = fit_and_index(pipe, feats.vectors, post)
    build_s = time.perf_counter() - start
    return Collection(
        data,
        fingerprint,
        pipe.cache,
        feats,
        cached,
        post,
        vectors,
        index,
        extract_s,
        build_s,
        n_distractors,
    )


def check_subsets(pipe: Pipeline, data: Dataset) -> None:
    """ConfigError unless ``eval.subset_groups`` fits the dataset's groups."""
    if pipe.eval.subsets:
        check_groups(data, pipe.eval.subset_groups)  # before any extraction


def fit_and_index(pipe: Pipeline, raw: np.ndarray, post: PostProcessor) -> tuple[np.ndarray, Index]:
    """Post-process ``raw`` (fitting ``post`` on it unless already fitted) and index the result."""
    vectors = post.transform(raw) if post.fitted else post.fit_transform(raw)
    index = pipe.new_index()
    index.build(vectors)
    return vectors, index


def fit_on_source(run: Pipeline | Mapping[str, Any]) -> Path | None:
    """The checked ``post.fit_on`` folder: a built index or a dataset folder (None if unset).

    Raises ConfigError before any extraction if the folder is missing, or is an index built with
    other features or another post-processing chain.
    """
    cfg = as_pipeline(run).config
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
    return {k: _identity(v) if isinstance(v, dict) else v for k, v in identity(feature_cfg).items()}


def fitted_post(pipe: Pipeline, fit_on: Path | None) -> PostProcessor:
    """A fresh chain: unfitted, or learned on ``fit_on`` (an index's state or a dataset)."""
    post = pipe.new_post()
    if fit_on is None:
        return post
    if (fit_on / MANIFEST).is_file():
        post.state = verified_post_state(fit_on)  # its checksum verified
        return post
    other = load_dataset(fit_on)
    feats, _ = pipe.features(other.root, list(other.names), other.fingerprint())
    if len(feats.names) == 0:
        raise ConfigError(f"post.fit_on: no image of {fit_on} could be read")
    return post.fit(feats.vectors)
