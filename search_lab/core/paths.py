"""The project's own folders: the checkout that holds the package, and its Hydra configs.

Defined once here, at the bottom, so the commands, the app and the Ray workers agree on them
(a module that works its way up from its own file breaks when it moves to another folder).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
"""The folder holding the ``search_lab`` package (and ``conf/``): the checkout."""

CONF_DIR = PROJECT_DIR / "conf"
"""The Hydra configs the commands compose and the app reads (datasets, ``app.yaml``)."""

CACHE_ENV = "SEARCH_LAB_CACHE"


def cache_root() -> Path:
    """The cache folder of what needs no configuration to find (exported graphs, lookup
    tables): ``$SEARCH_LAB_CACHE``, else ``.cache/search_lab`` under the working folder."""
    return Path(os.environ.get(CACHE_ENV, ".cache/search_lab"))
