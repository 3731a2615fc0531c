"""What makes two indexes different: their folder names, and the check before a build replaces one.

An index folder's default name must encode every parameter that changes what the folder
holds, or two configurations share a folder and the second silently replaces the first
(``index=faiss_ivf`` and ``index=faiss`` once both wrote ``hsv-cosine-faiss``). The name reads
``<feature>-<metric>-<index>`` (plus the Faiss factory), then, if any parameter differs from its
group's defaults, ``+`` and the differing values with a short hash of all of them:
``hsv-cosine-faiss-IVF1024_Flat``, ``hsv-cosine-exact+bins16x8x4-9aed51`` (the hash covers
every differing value, also those left out of a long name).

:func:`config_difference` names the first differences between a saved index's configuration
and a new one, so a build into a folder of another configuration can be refused in one line.
Plain Python on plain dicts: the Hydra resolver that calls :func:`index_folder_name` lives in
the entry layer (:mod:`search_lab.cli.glue`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search_lab.core import MANIFEST, ConfigError, IndexMismatchError, manifest_of

SECTIONS = ("feature", "post", "metric", "index")
"""Config sections that decide an index's contents (the dataset has its own prefix)."""

RESULT_NEUTRAL_KEYS = frozenset(
    {
        # how a run goes, not what it finds (``executor``: local or Ray, every executor.* key)
        "progress",
        "workers",
        "cache_dir",
        "executor",
        # how fast a feature's vectors are computed, not what they are (every fp32 engine
        # gives torch's vectors, search_lab/features/engines.py)
        "feature.threads",
        "feature.batch_size",
        "feature.download",
        "feature.device",
        "feature.engine",
        "feature.export_dir",
        # how fast an index is built or searched, not what it holds
        "index.threads",
        "index.n_jobs",
        "index.query_jobs",
    }
)
"""The one list of config keys (dotted, as overrides name them) that cannot change a result.

A key stands for everything under it. Used by the feature cache key
(:data:`search_lab.retrieval.extract.RUNTIME_PARAMS`), index names and the replace check
(:func:`significant`), a sweep's resume check and job folder names, and run names.
"""


def result_neutral(key: str) -> bool:
    """Whether config key ``key`` (``+``/``~`` prefixes ignored) cannot change a result.

    True for a key of :data:`RESULT_NEUTRAL_KEYS` and every key under one:
    ``result_neutral("executor.address")`` and ``result_neutral("+workers")`` are True,
    ``result_neutral("feature.bins")`` is False.
    """
    key = key.lstrip("+~")
    return any(key == k or key.startswith(f"{k}.") for k in RESULT_NEUTRAL_KEYS)


DATASET_KEYS = ("root", "layout", "labels", "split", "split_fraction", "split_seed")
"""Dataset settings that make two indexes different (which files are indexed)."""

MAX_SUFFIX = 48
_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")


def flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and tuples kept as lists (JSON's form)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat(value, f"{name}."))
        else:
            out[name] = json.loads(json.dumps(value, default=str))
    return out


def significant(cfg: Mapping[str, Any], sections: tuple[str, ...] = SECTIONS) -> dict[str, Any]:
    """The parameters of ``cfg`` that decide an index's contents, as dotted keys."""
    out = flat({s: cfg.get(s) or {} for s in sections})
    return {k: v for k, v in out.items() if not result_neutral(k)}


def _dataset(cfg: Mapping[str, Any]) -> dict[str, Any]:
    data = cfg.get("dataset") or {}
    return {f"dataset.{k}": data.get(k) for k in DATASET_KEYS if k in data}


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def config_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The differences between two index configurations in words, or None if they build the same.

    Compares feature, post-processing, metric, index and the dataset's folder, layout and
    labels; speed-only settings (:data:`RESULT_NEUTRAL_KEYS`) are ignored. At most three
    differences are named:
    ``index.factory 'HNSW32' → 'IVF1024,Flat'; feature.bins [8, 12, 3] → [16, 8, 4]``.
    """
    a = {**significant(old), **_dataset(old)}
    b = {**significant(new), **_dataset(new)}
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k, "<unset>") != b.get(k, "<unset>")]
    if not keys:
        return None
    words = [
        f"{k} {_shown(a.get(k, 'unset'))!s} → {_shown(b.get(k, 'unset'))!s}".replace("'", "")
        for k in keys[:3]
    ]
    more = f" (and {len(keys) - 3} more)" if len(keys) > 3 else ""
    return "; ".join(words) + more


def _slug(value: Any) -> str:
    if isinstance(value, list):
        return "x".join(_slug(v) for v in value)
    return _UNSAFE.sub("_", str(value).lower() if isinstance(value, bool) else str(value))


def index_folder_name(cfg: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """The default folder name of the index ``cfg`` describes (see the module docstring).

    ``reference`` holds the defaults of the groups ``cfg`` names (its ``feature``, ``post``,
    ``metric`` and ``index`` sections as their group files set them); every significant
    parameter that differs from it is encoded, the Faiss factory always.
    """
    index = cfg["index"]
    base = f"{cfg['feature']['name']}-{cfg['metric']['name']}-{index['name']}"
    if index["name"] == "faiss":
        base += f"-{_slug(index.get('factory', ''))}"
    ours, theirs = significant(cfg), significant(reference)
    named = {f"{s}.name" for s in SECTIONS} | {"index.factory"}
    diff = {
        k: v for k, v in ours.items() if k not in named and theirs.get(k, "<unset>") != v
    }  # fmt: skip
    if not diff:
        return base
    pieces = [f"{k.split('.', 1)[1]}{_slug(v)}" for k, v in sorted(diff.items())]
    kept = [p for i, p in enumerate(pieces) if len("+".join(pieces[: i + 1])) <= MAX_SUFFIX]
    digest = hashlib.sha256(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:6]
    return "+".join([base, *(kept or [pieces[0][:MAX_SUFFIX]])]) + f"-{digest}"


def summary_params(index_cfg: Mapping[str, Any], built: Mapping[str, Any] | None) -> dict[str, Any]:
    """An index's parameters as summaries show them: those the built index has (``built``,
    from the manifest) over the configured ones, and only those that apply to its type."""
    from search_lab.indexes import INDEXES

    params = {**index_cfg, **(built or {})}
    name = str(params.get("name", ""))
    return INDEXES.get(name).applicable(params) if name in INDEXES else params


def summary_config(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A saved index's config with its ``index`` section as summaries show it
    (:func:`summary_params`): what the app's labels and tables describe."""
    config = dict(manifest["config"])
    config["index"] = summary_params(config["index"], manifest.get("built"))
    return config


def check_target(target: Path, cfg: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Refuse to build into ``target`` if it holds an index of another configuration.

    Raises
    ------
    ConfigError
        Naming the folder and the differences, unless ``overwrite``. A folder of the same
        configuration is rebuilt in place; one without a readable manifest is left to
        :meth:`SearchEngine.save`'s own checks.
    """
    old = None if overwrite else saved_config(target)
    diff = config_difference(old, cfg) if old is not None else None
    if diff:
        raise refusal(target, diff)


def saved_config(target: Path) -> dict[str, Any] | None:
    """The configuration of the index saved in ``target``, or None: no index there, or a
    manifest that :meth:`SearchEngine.save`'s own checks will refuse."""
    if not (target / MANIFEST).is_file():
        return None
    try:
        return manifest_of(target)["config"]
    except IndexMismatchError:
        return None


def refusal(target: Path, diff: str) -> ConfigError:
    """The one-line refusal to build into ``target``, which holds another configuration."""
    return ConfigError(
        f"{target} holds an index of another configuration ({diff}): choose another "
        "index_dir, or add overwrite=true to replace it"
    )
