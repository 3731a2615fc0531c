"""Build a search index for the app: ``python -m search_lab.build_index [overrides]``.

Writes a self-describing folder (``index_dir``, default ``indexes/<feature>-<metric>-<index>``)
that ``SearchEngine.load`` checks and serves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from search_lab.cli.glue import CONF_DIR, run_job
from search_lab.engine import build_engine, check_replaceable
from search_lab.pipeline import build_pipeline
from search_lab.streaming_build import build_and_save, in_memory_reason

log = logging.getLogger(__name__)


def run(cfg: dict[str, Any], out_dir: Path) -> Path:
    """Build the configured engine and save it to ``cfg["index_dir"]``; returns that folder.

    Features extracted on Ray are indexed out of core, shard by shard (streaming_build).
    """
    pipe, target = build_pipeline(cfg), Path(cfg["index_dir"])
    check_replaceable(target)  # before any work: never delete what search_lab did not write
    reason = in_memory_reason(pipe)
    if reason is None:
        engine = build_and_save(pipe, target)
    else:
        if pipe.executor == "ray":
            log.info("building the index in memory: %s", reason)
        engine = build_engine(pipe)
        engine.save(target)
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


if __name__ == "__main__":
    from search_lab.cli.glue import entry

    entry(main, "build_index")
