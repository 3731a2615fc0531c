"""Keep an index folder current: extract only what was added or changed, drop what was removed.

:func:`update_index` is what ``build_index`` runs on the local executor. Into an empty place
it builds the index; into an index folder of the same configuration it updates it: the folder
is compared with the index's :mod:`~search_lab.retrieval.catalog` (size and time, then content
hash), vectors of unchanged images come from the index's own ``raw.npy`` (the features before
post-processing), renamed or copied photos and images extracted before (a killed run's work
included) come from the content-keyed :mod:`~search_lab.retrieval.vector_store`, and only the rest
is extracted. Index types that can remove items are changed in place (:meth:`Index.edit`: the
exact index, hnswlib, Faiss code arrays and IVF; see :mod:`search_lab.indexes.editing`); the
others (kd-tree, Annoy, NN-descent, Faiss HNSW) are rebuilt from the vectors, never
re-extracting, and so is any index once the images changed since its last build exceed
``refit_share`` of those it was built on (an HNSW graph keeps deleted items as waypoints, IVF
lists and PQ codebooks keep their first training). The manifest's ``index_fit`` says when it
was built and on how many images, ``update`` what this update did (``index``: how it changed
the index; ``update_s`` leaves out writing the folder it is in). A chain
fitted on the collection (PCA, whitening, expansion) is refitted once the images changed
since its fit exceed ``refit_share`` (default 0.2) of those it was fitted on; the manifest's
``post_fit`` says when it was fitted and on how many images. Every update (in place too: the
index is changed in memory) is written as a new folder swapped in atomically
(:meth:`SearchEngine.save`), under a lock, so a kill -9 at any moment leaves the previous
index loadable, and a second build waits for the first.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from search_lab.core import (
    MANIFEST,
    ConfigError,
    DatasetError,
    IndexMismatchError,
    atomic_write,
    integrity,
    library_write,
    manifest_of,
    swap,
)
from search_lab.data import Dataset
from search_lab.features import PostProcessor
from search_lab.indexes import plan_edit
from search_lab.retrieval.build import check_buildable, new_manifest
from search_lab.retrieval.cache import Features, cache_key
from search_lab.retrieval.catalog import CATALOG, Catalog, Entry, Plan, dataset_fingerprint, plan
from search_lab.retrieval.collection import fit_on_source, fitted_post
from search_lab.retrieval.engine import SearchEngine
from search_lab.retrieval.extract import feature_key
from search_lab.retrieval.index_folder import staging_dir
from search_lab.retrieval.index_identity import config_difference, refusal
from search_lab.retrieval.pipeline import Pipeline
from search_lab.retrieval.post_state import read_post_state
from search_lab.retrieval.vector_store import VectorStore, extract_missing

log = logging.getLogger(__name__)

RAW = "raw.npy"  # the indexed images' features before post-processing, in row order
REFIT_SHARE = 0.2  # default: refit PCA/whitening once 20% of the images changed since the fit


@dataclass
class Report:
    """What one ``build_index`` run did to the folder (its summary line: :meth:`line`)."""

    added: int
    changed: int
    removed: int
    unchanged: int
    extracted: int
    extract_s: float
    update_s: float
    refitted: bool = False
    written: bool = True
    in_place: bool = False
    index_s: float = 0.0  # changing or building the index alone

    def line(self) -> str:
        """``added A, changed C, removed R, unchanged U; extracted E images in S s; ...``."""
        return (
            f"added {self.added}, changed {self.changed}, removed {self.removed}, "
            f"unchanged {self.unchanged}; extracted {self.extracted} images in "
            f"{self.extract_s:.1f} s; index updated in {self.update_s:.1f} s"
        )


@dataclass
class Previous:
    """The index folder being updated: its manifest, catalog and raw features."""

    manifest: dict[str, Any]
    catalog: Catalog
    raw: np.ndarray


@contextmanager
def index_lock(target: Path) -> Iterator[None]:
    """Hold the lock of ``target`` (beside it: the folder itself is swapped); wait if taken."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.parent / f".{target.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another build_index is updating %s: waiting for it to finish", target)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def previous(pipe: Pipeline, target: Path, root: Path, overwrite: bool) -> Previous | None:
    """The index in ``target`` to update, or None when there is none to update (full build).

    Raises ConfigError when ``target`` holds an index of another configuration or dataset,
    unless ``overwrite`` (then it is built anew).
    """
    if not (target / MANIFEST).is_file():
        return None
    try:
        manifest = manifest_of(target)
    except IndexMismatchError as err:
        log.warning("%s; building it anew", err)
        return None
    diff = config_difference(manifest["config"], pipe.config)
    if diff is None and Path(manifest["root"]) != root.resolve():
        diff = f"dataset.root {manifest['root']} → {root.resolve()}"
    if diff is not None:
        if overwrite:
            return None
        raise refusal(target, diff)
    if not (target / CATALOG).is_file() or not (target / RAW).is_file():
        log.info("%s holds no catalog of its files (built before updates): building anew", target)
        return None
    if problem := integrity.problem(target, manifest["files"]):
        log.warning("%s: %s; building it anew", target, problem)
        return None
    return Previous(manifest, Catalog.read(target), np.load(target / RAW))


def update_index(
    pipe: Pipeline, target: Path, *, rebuild: bool = False, overwrite: bool = False
) -> tuple[SearchEngine, Report]:
    """Build ``target``, or update the index it holds (see module doc); ``rebuild`` forces a
    full build, ``overwrite`` replaces an index of another configuration. Returns the engine
    and what was done.

    Raises
    ------
    ConfigError
        ``target`` holds an index of another configuration, or no image could be read.
    DatasetError
        The dataset folder is missing or empty (``target`` is then left as it was).
    """
    check_buildable(pipe)
    share = pipe_share(pipe)
    with index_lock(target):
        swap.recover(target)
        try:
            full = pipe.dataset.load()
        except DatasetError as err:
            kept = f"; {target} is left as it was" if (target / MANIFEST).is_file() else ""
            raise DatasetError(f"{err}{kept}") from err
        data = pipe.dataset.side(full)
        old = None if rebuild else previous(pipe, target, data.root, overwrite)
        return _update(pipe, target, full, data, old, share)


def _update(
    pipe: Pipeline, target: Path, full: Dataset, data: Dataset, old: Previous | None, share: float
) -> tuple[SearchEngine, Report]:
    """Plan, get the vectors, fit, index and save (under the lock)."""
    start = time.perf_counter()
    changes = plan(data.root, list(data.names), old.catalog if old else Catalog())
    fingerprint = dataset_fingerprint(full, changes)
    old_names = old.manifest["names"] if old else []
    row_of = {name: i for i, name in enumerate(old_names)}
    keep = sorted(row_of[n] for n in changes.unchanged)
    fresh, fresh_raw, skipped, extracted, extract_s = _fresh_vectors(pipe, data.root, changes, old)
    report = Report(
        len(changes.added), len(changes.changed), len(changes.removed),
        len(changes.unchanged), extracted, extract_s, 0.0,
    )  # fmt: skip
    if not keep and not fresh:
        raise ConfigError(f"no image of {data.root} could be read")
    unchanged_entries = (
        old is not None
        and old.manifest["fingerprint"] == fingerprint
        and old.manifest["config"].get("rerank") == pipe.config.get("rerank")  # what `search` does
        and all(
            changes.entries[n] == old.catalog.indexed.get(n, old.catalog.skipped.get(n))
            for n in changes.entries
        )
    )
    if old is not None and not fresh and not changes.removed and unchanged_entries:
        report.written, report.update_s = False, time.perf_counter() - start - extract_s
        return SearchEngine.load(target, check_dataset=False), report  # compared just now
    raw = np.concatenate([old.raw[keep], fresh_raw]) if old is not None else fresh_raw
    post, fit_info, report.refitted = _post(pipe, target, old, raw, report)
    started = time.perf_counter()
    index, sources, how = _index(pipe, target, old, keep, fresh_raw, post, report)
    report.index_s = time.perf_counter() - started
    names = [old_names[i] if i >= 0 else fresh[-1 - i] for i in sources.tolist()]
    if old is not None and how["in_place"]:  # rows in the index's order
        rows = np.where(sources >= 0, sources, len(old.raw) - 1 - sources)
        raw = np.concatenate([old.raw, fresh_raw])[rows]
    before = old.manifest["skipped"] if old is not None else {}
    skipped_all = {n: before.get(n, "unreadable") for n in changes.still_skipped} | skipped
    catalog = Catalog(
        {n: changes.entries[n] for n in names},
        {n: changes.entries[n] for n in skipped_all if n in changes.entries},
    )
    feats = Features(names, raw, skipped_all, extract_s)
    manifest = new_manifest(
        pipe, data, feats, dim=index.dim, fingerprint=fingerprint,
        build_s=time.perf_counter() - start - extract_s,
    )  # fmt: skip
    manifest["post_fit"] = fit_info
    manifest["index_fit"] = how.pop("fit")
    report.update_s = time.perf_counter() - start - extract_s  # the folder's write left out
    manifest["update"] = {**report.__dict__, "full": old is None, "index": how}
    engine = SearchEngine(manifest, index, post, pipe.extractor)
    _save(engine, target, raw, catalog)
    report.update_s = time.perf_counter() - start - extract_s
    return engine, report


def _fresh_vectors(
    pipe: Pipeline, root: Path, changes: Plan, old: Previous | None
) -> tuple[list[str], np.ndarray, dict[str, str], int, float]:
    """Raw vectors of the added and changed images: reused by content where known, else
    extracted. Returns the names that could be read, their vectors, the unreadable files,
    how many images were extracted and the seconds that took."""
    by_hash: dict[str, int] = {}
    if old is not None:
        for i, name in enumerate(old.manifest["names"]):
            by_hash.setdefault(old.catalog.indexed[name][2], i)
    cache_dir = pipe.cache.directory if pipe.cache is not None else None
    store = VectorStore.for_extractor(cache_dir, pipe.extractor)
    if old is None:
        _seed_from_collection_cache(pipe, root, changes, store)
    todo = [(n, changes.entries[n][2]) for n in changes.fresh]
    todo = [(n, h) for n, h in todo if h not in by_hash and not h.startswith("unreadable:")]
    skipped, extracted, seconds = extract_missing(
        store, pipe.extractor, root, todo, workers=pipe.workers, progress=pipe.progress
    )
    names, rows = [], []
    for name in changes.fresh:
        digest = changes.entries[name][2]
        vector = old.raw[by_hash[digest]] if digest in by_hash else store.get(digest)
        if vector is None:
            skipped.setdefault(name, f"{root / name}: cannot be read")
            continue
        names.append(name)
        rows.append(vector)
    dim = old.raw.shape[1] if old is not None else (len(rows[0]) if rows else 0)
    matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    return names, matrix, skipped, extracted, seconds


def _seed_from_collection_cache(pipe: Pipeline, root: Path, changes: Plan, store: Any) -> None:
    """On a full build, take vectors an evaluation already cached for this very file list."""
    if pipe.cache is None or pipe.extractor.cache_parts():
        return
    names = changes.fresh
    fingerprint = load_dataset_fingerprint(root, names)
    key = cache_key(
        fingerprint=fingerprint,
        names=cache_key(names=names),
        feature=feature_key(pipe.extractor),
        rotation=0,
    )  # fmt: skip  (the key whole_features uses)
    hit = pipe.cache.get(key) if pipe.cache.path(key).is_file() else None
    if hit is not None:
        store.remember([changes.entries[n][2] for n in hit.names], hit.vectors)


def load_dataset_fingerprint(root: Path, names: list[str]) -> str:
    """The fingerprint :meth:`Dataset.fingerprint` gives the file list ``names`` of ``root``."""
    return Dataset(root, tuple(names), tuple(names), (), {}).fingerprint()


def _post(
    pipe: Pipeline, target: Path, old: Previous | None, raw: np.ndarray, report: Report
) -> tuple[PostProcessor, dict[str, Any], bool]:
    """The chain for the new collection, its fit record, and whether it was (re)fitted now."""
    fit_on = fit_on_source(pipe)
    if fit_on is not None:
        post = fitted_post(pipe, fit_on)
        return post, {"source": str(fit_on), "fitted": _now(), "images": None}, False
    post = pipe.new_post()
    if post.fitted:  # nothing learned from the collection (no PCA, no expansion)
        return post, {"fitted": None, "images": 0, "changed_since": 0}, False
    moved = report.added + report.changed + report.removed
    if old is not None and old.manifest.get("post_fit", {}).get("images"):
        fit = dict(old.manifest["post_fit"])
        fit["changed_since"] = fit.get("changed_since", 0) + moved
        if fit["changed_since"] <= pipe_share(pipe) * fit["images"]:
            post.state = read_post_state(target)
            return post, fit, False
        log.info(
            "%d images changed since the chain was fitted on %d (more than %.0f%%): refitting",
            fit["changed_since"], fit["images"], 100 * pipe_share(pipe),
        )  # fmt: skip
    post.fit(raw)
    fit = {"fitted": _now(), "images": len(raw), "changed_since": 0, "share": pipe_share(pipe)}
    return post, fit, True


def pipe_share(pipe: Pipeline) -> float:
    """The configured ``refit_share`` (share of changed images that triggers a refit)."""
    value = pipe.config.get("refit_share", REFIT_SHARE)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"refit_share must be a number >= 0, got {value!r}")
    return float(value)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _index(
    pipe: Pipeline,
    target: Path,
    old: Previous | None,
    keep: list[int],
    fresh_raw: np.ndarray,
    post: PostProcessor,
    report: Report,
) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The index of the new collection, changed in place where it can be (see module doc),
    else built from the vectors; with the old row (or ``-1 - j``: fresh row j) of each of its
    rows and a record of what was done (``fit``: the manifest's ``index_fit``)."""
    sources = np.concatenate([np.asarray(keep, np.int64), -1 - np.arange(len(fresh_raw))])
    why = _why_rebuild(old, report, pipe_share(pipe)) if old is not None else "no index yet"
    if why is None and old is not None:
        index = pipe.new_index()
        index.load(target)
        mode = index.edit_mode(len(sources))
        if mode is not None:
            edit = plan_edit(mode, len(old.raw), keep, len(fresh_raw))
            vectors = np.concatenate([old.raw, fresh_raw])
            rows = np.where(edit.sources >= 0, edit.sources, len(old.raw) - 1 - edit.sources)
            index.edit(edit.drop, edit.put, post.transform(vectors[rows[edit.put]]))
            fit = dict(old.manifest.get("index_fit") or {"built": None, "images": len(old.raw)})
            fit["changed_since"] = fit.get("changed_since", 0) + _moved(report)
            report.in_place = True
            how = {"in_place": True, "mode": mode, "dropped": len(edit.drop), "put": len(edit.put)}
            log.info("%s index changed in place (%s): %s", index.kind, mode, how)
            return index, edit.sources, {**how, "moved": edit.moved, "fit": fit}
        why = f"{index.kind} index not changed in place: {index.why_not_in_place(len(sources))}"
    raw = np.concatenate([old.raw[keep], fresh_raw]) if old is not None else fresh_raw
    index = pipe.new_index()
    index.build(post.transform(raw))
    if old is not None:
        log.info("%s index rebuilt from cached vectors: %s", index.kind, why)
    fit = {"built": _now(), "images": len(raw), "changed_since": 0}
    return index, sources, {"in_place": False, "mode": None, "why": why, "fit": fit}


def _moved(report: Report) -> int:
    return report.added + report.changed + report.removed


def _why_rebuild(old: Previous, report: Report, share: float) -> str | None:
    """Why the old index must be rebuilt rather than changed in place, or None."""
    if report.refitted:
        return "the post-processing chain was refitted"
    fit = old.manifest.get("index_fit") or {"images": len(old.raw)}
    since = fit.get("changed_since", 0) + _moved(report)
    if since > share * fit["images"]:
        return f"{since} images changed since it was built on {fit['images']} (over {share:g})"
    return None


def _save(engine: SearchEngine, target: Path, raw: np.ndarray, catalog: Catalog) -> None:
    """Write the raw features and the catalog beside the index, then swap the folder in."""
    tmp = staging_dir(target)
    try:
        library_write(tmp / RAW, lambda: np.save(tmp / RAW, np.asarray(raw, np.float32)))
        text = json.dumps(catalog.to_json(), ensure_ascii=True).encode()
        atomic_write(tmp / CATALOG, lambda handle: handle.write(text))
        engine.save(target, staged=tmp)
    except OSError as err:  # a full disk: name the file, and say the old index is untouched
        shutil.rmtree(tmp, ignore_errors=True)
        why = f"{err.strerror or err}; the previous index is kept"
        raise OSError(err.errno, why, err.filename or str(target)) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["REFIT_SHARE", "Entry", "Report", "update_index"]
