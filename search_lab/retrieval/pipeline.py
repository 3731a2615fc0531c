"""A run's components, built once from its configuration: the one place a config becomes objects.

:func:`build_pipeline` turns the resolved config (a plain dict: the entry layer composes it)
into a :class:`Pipeline`: the extractor, the post-processing chain, the index, the dataset,
the evaluation options and the executor. Each value is checked in exactly one place, by the
constructor of the object that uses it, before any work; the core then takes these objects.
The chain and the index are prototypes: every collection (the dataset, a subset, a count of
distractors) gets a fresh copy, so they are validated once and never rebuilt from the config.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_lab import indexes
from search_lab.core import (
    ConfigError,
    is_int,
    require,
    require_bool,
    require_choice,
    require_int,
    require_positive_int,
)
from search_lab.data import Dataset, distractors, load_dataset, split_dataset
from search_lab.features import Extractor, PostProcessor
from search_lab.indexes import Index
from search_lab.retrieval.cache import FeatureCache, Features
from search_lab.retrieval.extract import (
    Fetch,
    Progress,
    build_extractor,
    cached_features,
    whole_features,
)
from search_lab.retrieval.rerank import RerankOptions


@dataclass(frozen=True)
class EvalOptions:
    """The ``eval`` section: what is scored and how (values and defaults: ``conf/config.yaml``)."""

    k: tuple[int, ...]
    rotations: bool
    depth: int | None
    max_queries: int | None
    subsets: int
    subset_groups: int
    subset_seed: int
    distractor_counts: tuple[int, ...] | None
    distractor_seed: int

    @classmethod
    def from_config(cls, ev: Mapping[str, Any], distractor_folder: str | None) -> EvalOptions:
        """The checked options (ConfigError naming the first bad value)."""
        ks = ev["k"]
        ok = isinstance(ks, list) and bool(ks) and all(is_int(k) and k > 0 for k in ks)
        require("eval.k", ks, ok, "a list of positive integers")
        require_bool("eval.rotations", ev["rotations"])
        count, groups = require_int("eval.subsets", ev["subsets"] or 0, 0), ev["subset_groups"]
        if count:
            require_positive_int("eval.subset_groups", groups)
        counts = distractors.check_counts(ev, distractor_folder)
        return cls(
            k=tuple(ks),
            rotations=ev["rotations"],
            depth=require_positive_int("eval.depth", ev["depth"], null=True),
            max_queries=require_positive_int("eval.max_queries", ev["max_queries"], null=True),
            subsets=count,
            subset_groups=groups,
            subset_seed=ev["subset_seed"],
            distractor_counts=None if counts is None else tuple(counts),
            distractor_seed=ev["distractor_seed"],
        )


@dataclass(frozen=True)
class DatasetSpec:
    """The ``dataset`` section: where the images are, which side of the split, distractors."""

    root: str
    layout: str
    labels: str | None
    split: str
    split_fraction: float
    split_seed: int
    distractors: str | None

    @classmethod
    def from_config(cls, dataset: Mapping[str, Any]) -> DatasetSpec:
        """The dataset options (the split's are checked by :meth:`side`)."""
        keys = ("root", "layout", "labels", "split", "split_fraction", "split_seed", "distractors")
        return cls(**{key: dataset[key] for key in keys})

    def load(self) -> Dataset:
        """The whole dataset (every side of the split): DatasetError if it cannot be read."""
        return load_dataset(self.root, layout=self.layout, labels=self.labels)

    def side(self, full: Dataset) -> Dataset:
        """The configured side of the split of ``full``."""
        return split_dataset(full, self.split, fraction=self.split_fraction, seed=self.split_seed)


@dataclass(frozen=True)
class Pipeline:
    """Everything a run needs, built once: see :func:`build_pipeline`."""

    config: dict[str, Any]
    """The resolved configuration, recorded in ``metrics.json`` and index manifests."""
    extractor: Extractor
    post: PostProcessor
    """The unfitted chain; :meth:`new_post` gives each collection its own copy."""
    index: Index
    """The empty index; :meth:`new_index` gives each collection its own copy."""
    dataset: DatasetSpec
    eval: EvalOptions
    fetch: Fetch = field(repr=False)
    """Features of one whole extractor: here, or on the configured executor (Ray)."""
    cache: FeatureCache | None = None
    workers: int | None = None
    progress: Progress = True
    rerank: RerankOptions = field(default_factory=RerankOptions)
    """Geometric re-ranking of each query's top results (``rerank=sv``); off by default."""

    @property
    def executor(self) -> str:
        """The configured executor's name: ``local`` (this machine's pool) or ``ray``."""
        return (self.config.get("executor") or {}).get("name", "local")

    def new_post(self) -> PostProcessor:
        """A fresh, unfitted copy of the checked chain."""
        return copy.deepcopy(self.post)

    def new_index(self) -> Index:
        """A fresh, empty copy of the checked index."""
        return copy.deepcopy(self.index)

    def features(
        self,
        root: Path,
        names: list[str],
        fingerprint: str,
        *,
        rotation: int = 0,
        extractor: Extractor | None = None,
    ) -> tuple[Features, bool]:
        """Features of ``names`` (cache first) with this run's extractor, executor and cache."""
        return cached_features(
            self.cache,
            root,
            names,
            fingerprint,
            extractor or self.extractor,
            rotation=rotation,
            workers=self.workers,
            progress=self.progress,
            fetch=self.fetch,
        )


def make_index(cfg: Mapping[str, Any]) -> Index:
    """The empty index described by ``cfg["index"]`` and ``cfg["metric"]``."""
    params = dict(cfg["index"])
    return indexes.create(params.pop("name"), metric=cfg["metric"]["name"], **params)


def make_post(cfg: Mapping[str, Any]) -> PostProcessor:
    """The (unfitted) post-processing chain described by ``cfg["post"]``."""
    params = {k: v for k, v in cfg.get("post", {}).items() if k != "fit_on"}
    try:
        return PostProcessor(**params)
    except TypeError as err:
        raise ConfigError(f"post: {err}") from err


def _ray_fetch(ex: dict[str, Any]) -> Fetch:
    from search_lab.retrieval.ray_executor import RayExecutor

    remote = RayExecutor(ex)

    def fetch(cache: Any, root: Path, names: Any, fp: str, part: Extractor, **o: Any) -> Any:
        return remote.cached_features(cache, root, names, fp, part.spec, **o)

    return fetch


EXECUTORS: dict[str, Callable[[dict[str, Any]], Fetch]] = {
    "local": lambda ex: whole_features,
    "ray": _ray_fetch,
}
"""``executor.name`` -> the features of one extractor on that executor (given its config)."""


def make_fetch(executor: Mapping[str, Any] | None) -> Fetch:
    """The features source of the configured executor (``executor=local``: this machine)."""
    ex = dict(executor or {"name": "local"})
    return EXECUTORS[require_choice("executor", ex.get("name"), sorted(EXECUTORS))](ex)


def check_devices(feature: Mapping[str, Any], executor: Mapping[str, Any]) -> None:
    """ConfigError for GPU settings that cannot work together (before any work).

    A Ray task that reserves no GPU is shown none, and a GPU reserved for a feature that runs
    on the CPU would sit idle.
    """
    device, gpus = feature.get("device"), executor.get("gpus_per_task") or 0
    if gpus and device not in ("cuda", "auto"):
        raise ConfigError(
            f"executor.gpus_per_task={gpus} reserves GPUs, but feature={feature['name']} runs "
            "on the CPU: use feature=cnn feature.device=auto (or cuda), or gpus_per_task=0"
        )
    if executor.get("name") == "ray" and device == "cuda" and not gpus:
        raise ConfigError(
            "feature.device=cuda on Ray needs executor.gpus_per_task > 0 (a task that reserves "
            "no GPU is shown none); or use feature.device=auto"
        )


def build_pipeline(cfg: Mapping[str, Any], progress: Progress | None = None) -> Pipeline:
    """The run ``cfg`` describes, every value checked before any work (ConfigError if not).

    ``progress`` overrides ``cfg["progress"]`` (the app passes its own progress callback).
    """
    cfg = dict(cfg)
    dataset = DatasetSpec.from_config(cfg["dataset"])
    options = EvalOptions.from_config(cfg["eval"], dataset.distractors)
    workers = require_positive_int("workers", cfg.get("workers"), null=True)
    extractor = build_extractor(cfg["feature"])
    index, post = make_index(cfg), make_post(cfg)
    rerank = RerankOptions.from_config(cfg.get("rerank"))
    if rerank.enabled and dataset.distractors:
        raise ConfigError(
            "rerank=sv reads the collection's image files, and distractors live in another "
            "folder: drop dataset.distractors or rerank"
        )
    if cfg["metric"]["name"] == "chi2" and post.pca_dim is not None:
        raise ConfigError(
            "metric chi2 needs non-negative histograms; PCA (post.pca_dim) makes "
            "negative values: use another metric or drop post.pca_dim"
        )
    executor = dict(cfg.get("executor") or {"name": "local"})
    check_devices(cfg["feature"], executor)
    fetch = make_fetch(executor)
    if executor["name"] == "local":
        extractor.prepare()  # last: weights missing are one line (Ray workers load their own)
    return Pipeline(
        config=cfg,
        extractor=extractor,
        post=post,
        index=index,
        dataset=dataset,
        eval=options,
        fetch=fetch,
        cache=FeatureCache(cfg["cache_dir"]) if cfg.get("cache_dir") else None,
        workers=workers,
        progress=cfg.get("progress", True) if progress is None else progress,
        rerank=rerank,
    )
