"""The recipe a plain photo folder is indexed with when the command line names none.

``build_index`` on a plain photo folder, with no feature, post-processing, re-ranking or
experiment named, indexes it with ``+experiment=recommended`` when its CNN can run here (the
recipe that holds on photos of the same scene and of the same kind of scene alike), else with
the colour histogram, said in one line either way. The app's Your photos page offers the same
default (:func:`cnn_missing`).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from search_lab.cli.glue import MULTIRUN_FLAGS, compose_config, first_job
from search_lab.core import SearchLabError
from search_lab.data import layout_of

RECOMMENDED = "+experiment=recommended"
RECIPE_KEYS = ("feature", "post", "rerank", "experiment")
"""Config keys that make a recipe: a command line naming one (or a key under one) chose its own."""


def names_recipe(overrides: Sequence[str]) -> bool:
    """Whether ``overrides`` name a feature, post-processing, re-ranking or experiment."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    return any(k == r or k.startswith(f"{r}.") for k in keys for r in RECIPE_KEYS)


@functools.lru_cache(maxsize=1)
def recommended_config() -> dict[str, Any]:
    """The resolved configuration of ``+experiment=recommended`` (composed once per process)."""
    return compose_config([RECOMMENDED])


def cnn_missing(cnn: Mapping[str, Any] | None = None) -> str | None:
    """Why a CNN (default: the recommended recipe's) cannot run here, or None when it can;
    found without importing torch: torch installed, the backbone's weights file present."""
    from search_lab.features import weights_file

    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    cnn = cnn or recommended_config()["feature"]["cnn"]
    if weights_file(cnn["backbone"], cnn["weights"]) is None:
        return f"the weights of {cnn['backbone']} ({cnn['weights']}) are not installed"
    return None


def folder_recipe(argv: Sequence[str], config_name: str = "build_index") -> list[str]:
    """Command-line arguments ``argv`` plus :data:`RECOMMENDED` when they index a plain photo
    folder, name no recipe, and the CNN can run here; said in one line on stderr either way
    for a plain folder (before Hydra, whose logging is not set up yet).

    Arguments that do not compose are returned as they are: the command says what is wrong.
    """
    argv = list(argv)
    overrides = [arg for arg in argv if not arg.startswith("-")]
    if names_recipe(overrides) or {arg for arg in argv if arg.startswith("-")} - MULTIRUN_FLAGS:
        return argv  # a recipe named, or Hydra's own flags (--cfg, --help, ...)
    try:
        data = compose_config(first_job(overrides), config_name)["dataset"]
        if layout_of(Path(data["root"]), data.get("layout", "auto")) != "plain":
            return argv
    except SearchLabError:
        return argv
    missing = cnn_missing()
    if missing:
        print(f"plain photo folder: {missing}, so it is indexed by colour histogram",
              file=sys.stderr)  # fmt: skip
        return argv
    print(f"plain photo folder: indexed with the recommended recipe ({RECOMMENDED}; name a "
          "feature, e.g. feature=hsv, for another)", file=sys.stderr)  # fmt: skip
    return [*argv, RECOMMENDED]
