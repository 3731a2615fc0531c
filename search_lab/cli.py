"""Glue shared by the Hydra entry points: plain-dict configs, output folders, one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from search_lab.errors import SearchLabError

log = logging.getLogger(__name__)


def run_job(run: Callable[[dict[str, Any], Path], Any], cfg: DictConfig) -> Any:
    """Call ``run(config_dict, output_dir)``; a SearchLabError becomes one line and exit status 2."""
    out = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
        return run(config, out)
    except SearchLabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # interpolation errors and the like: still one line
        if type(err).__module__.startswith("omegaconf"):
            print(f"error: bad configuration: {err}".splitlines()[0], file=sys.stderr)
            sys.exit(2)
        raise
