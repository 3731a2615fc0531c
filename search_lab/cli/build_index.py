"""Build a search index for the app: ``python -m search_lab.build_index [overrides]``.

Writes a self-describing folder (``index_dir``, default ``indexes/<feature>-<metric>-<index>``
plus every parameter that differs from its groups' defaults,
:mod:`search_lab.retrieval.index_identity`) that ``SearchEngine.load`` checks and serves; a folder
of another configuration is refused unless ``overwrite=true``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from search_lab.cli.glue import CONF_DIR, run_job
from search_lab.retrieval import (
    SearchEngine,
    build_and_save,
    build_engine,
    build_pipeline,
    check_replaceable,
    check_target,
    in_memory_reason,
    index_local_features,
    update_index,
)

log = logging.getLogger(__name__)


def run(cfg: dict[str, Any], out_dir: Path) -> Path:
    """Build the configured engine and save it to ``cfg["index_dir"]``; returns that folder.

    On the local executor an existing index of the same configuration is updated (only added
    and changed images extracted; ``rebuild=true`` forces a full build:
    search_lab.retrieval.update). Features extracted on Ray are indexed out of core, shard by shard
    (streaming_build).
    """
    pipe, target = build_pipeline(cfg), Path(cfg["index_dir"])
    check_replaceable(target)  # before any work: never delete what search_lab did not write
    overwrite, reason = bool(cfg.get("overwrite", False)), in_memory_reason(pipe)
    if pipe.executor == "local":  # kept current: only added and changed images are extracted
        rebuild = bool(cfg.get("rebuild"))
        engine, report = update_index(pipe, target, rebuild=rebuild, overwrite=overwrite)
        print(report.line())
        return _summary(_with_local_features(engine, cfg), target)
    check_target(target, pipe.config, overwrite=overwrite)
    if reason is None:
        engine = build_and_save(pipe, target)
    else:
        if pipe.executor == "ray":
            log.info("building the index in memory: %s", reason)
        engine = build_engine(pipe)
        engine.save(target)
    return _summary(_with_local_features(engine, cfg), target)


def _with_local_features(engine: SearchEngine, cfg: dict[str, Any]) -> SearchEngine:
    """With ``rerank=sv``, the collection's local features computed now, at indexing (and
    cached), so that the first query of ``search`` or the app does not pay for them."""
    line = index_local_features(engine, cfg.get("rerank"))
    if line:
        print(line)
    return engine


def _summary(engine: SearchEngine, target: Path) -> Path:
    """Print the one summary line of a built index; returns its folder."""
    skipped = len(engine.manifest["skipped"])
    print(
        f"built {target}: {engine.describe()}; {skipped} files skipped"
        + (f" ({', '.join(sorted(engine.manifest['skipped']))})" if skipped else "")
    )
    return target


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="build_index")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    run_job(run, cfg)


def cli() -> None:
    """``python -m search_lab.build_index``: a plain photo folder named with no recipe gets the
    recommended one (:func:`search_lab.cli.recipes.folder_recipe`), then Hydra runs :func:`main`."""
    from search_lab.cli.glue import entry
    from search_lab.cli.recipes import folder_recipe

    sys.argv[1:] = folder_recipe(sys.argv[1:])
    entry(main, "build_index")


if __name__ == "__main__":
    cli()
