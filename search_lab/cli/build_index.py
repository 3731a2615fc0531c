"""Build a search index for the app: ``python -m search_lab.build_index [overrides]``.

Writes a self-describing folder (``index_dir``, default ``indexes/<feature>-<metric>-<index>``)
that ``SearchEngine.load`` checks and serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from search_lab.cli.glue import CONF_DIR, run_job
from search_lab.engine import build_engine
from search_lab.pipeline import build_pipeline


def run(cfg: dict[str, Any], out_dir: Path) -> Path:
    """Build the configured engine and save it to ``cfg["index_dir"]``; returns that folder."""
    engine = build_engine(build_pipeline(cfg))
    target = Path(cfg["index_dir"])
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
