"""``build_index executor=ray``: an index built out of core from the collection's feature shards.

The Ray executor leaves the features in the feature cache as shards. Here they are read back
one at a time: a first pass collects the names (and the moments a PCA chain is fitted from), a
second pass post-processes each shard and streams it into the index (``Index.build_streaming``,
written straight into the folder that becomes the index). So the driver holds one shard plus
the index itself, whatever the size of the collection. ``combo`` features and ``post.expand``
need the whole matrix at once: those runs take the in-memory path, said in the log.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search_lab.core import ConfigError
from search_lab.features import PostProcessor
from search_lab.retrieval.build import check_buildable, new_manifest
from search_lab.retrieval.cache import FeatureCache, Features
from search_lab.retrieval.collection import fit_on_source, fitted_post
from search_lab.retrieval.engine import SearchEngine
from search_lab.retrieval.index_folder import staging_dir
from search_lab.retrieval.pipeline import Pipeline
from search_lab.retrieval.ray_executor import RayExecutor, read_shard

log = logging.getLogger(__name__)


def in_memory_reason(pipe: Pipeline) -> str | None:
    """Why this build cannot stream (None when it can): executor, feature or chain."""
    if pipe.executor != "ray":
        return "features come from the local executor as one matrix"
    if pipe.extractor.cache_parts():
        return "combo features are assembled from their parts in memory"
    if pipe.post.expand:
        return "post.expand keeps the whole collection as neighbours"
    return None


@dataclass
class ShardStream:
    """The cached shards of a collection, restricted to ``keep``, read one at a time."""

    cache: FeatureCache
    keys: list[str]
    keep: set[str]
    names: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def _kept(self) -> Iterator[tuple[Features, list[int]]]:
        """Each shard in order, with the rows of it that ``keep`` holds."""
        for key in self.keys:
            feats = read_shard(self.cache, key)
            yield feats, [i for i, n in enumerate(feats.names) if n in self.keep]

    def scan(self, post: PostProcessor) -> None:
        """First pass: the kept names in order, skipped files, and ``post`` fitted if it must be."""
        fit = not post.fitted
        count, total, outer = 0, 0.0, 0.0
        for feats, rows in self._kept():
            self.names += [feats.names[i] for i in rows]
            self.skipped.update({n: w for n, w in feats.skipped.items() if n in self.keep})
            self.seconds += feats.seconds
            if fit and rows:
                n, s, o = post.moments(feats.vectors[rows])
                count, total, outer = count + n, total + s, outer + o
        if not self.names:
            raise ConfigError("no image of the collection could be read")
        if fit:
            post.fit_moments(count, np.asarray(total), np.asarray(outer))

    def blocks(self, post: PostProcessor) -> Iterator[np.ndarray]:
        """Second pass: each shard's kept rows, post-processed (float32)."""
        for feats, rows in self._kept():
            if rows:
                yield post.transform(feats.vectors[rows])


def build_and_save(pipe: Pipeline, target: Path) -> SearchEngine:
    """Extract missing shards on Ray, then fit and index them out of core into ``target``."""
    check_buildable(pipe)
    full = pipe.dataset.load()
    data = pipe.dataset.side(full)
    fit_on = fit_on_source(pipe)
    if pipe.cache is None:
        raise ConfigError("executor=ray writes every shard to the feature cache: set cache_dir")
    fingerprint = full.fingerprint()
    shards, _ = RayExecutor(pipe.config["executor"]).ensure_shards(
        pipe.cache, full.root, list(full.names), fingerprint, pipe.extractor.spec,
        progress=pipe.progress,
    )  # fmt: skip
    stream = ShardStream(pipe.cache, [key for _, key in shards], set(data.names))
    post = fitted_post(pipe, fit_on)
    stream.scan(post)
    start = time.perf_counter()
    tmp = staging_dir(target)
    try:
        index = pipe.new_index()
        index.build_streaming(stream.blocks(post), len(stream.names), tmp)
        features = Features(stream.names, np.zeros((0, 0), np.float32), stream.skipped,
                            stream.seconds)  # fmt: skip
        manifest = new_manifest(pipe, data, features, dim=index.dim, fingerprint=fingerprint,
                                build_s=time.perf_counter() - start)  # fmt: skip
        engine = SearchEngine(manifest, index, post, pipe.extractor)
        engine.save(target, staged=tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built %s out of core from %d shards", target, len(shards))
    return engine
