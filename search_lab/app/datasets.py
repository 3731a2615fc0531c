"""Datasets the app may show: the folders it serves and the collections indexes were built on."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_lab.app.photos import allowed_roots
from search_lab.core import CONF_DIR
from search_lab.data import Dataset, default_root


def served_folders() -> list[Path]:
    """Folders the app may read datasets from: ``$HOLIDAYS_DIR``, every ``conf/dataset``
    config's images folder and labels file folder (e.g. ``$WANG_DIR``), as configured now, and
    the photo folders of ``app.roots`` (:func:`search_lab.app.photos.allowed_roots`).

    Every app run asks, so the answer is cached per config files (name, mtime) and environment.
    """
    with os.scandir(CONF_DIR / "dataset") as entries:
        configs = sorted(
            (e.name, e.stat().st_mtime_ns) for e in entries if e.name.endswith(".yaml")
        )
    found = _served_folders(tuple(configs), tuple(sorted(os.environ.items())))
    return list(dict.fromkeys([*found, *allowed_roots()]))


@functools.lru_cache(maxsize=16)
def _served_folders(
    configs: tuple[tuple[str, int], ...], environ: tuple[tuple[str, str], ...]
) -> tuple[Path, ...]:
    """:func:`served_folders` for these ``conf/dataset`` files (reading them took ~7 ms a call)."""
    from omegaconf import OmegaConf

    folders = [default_root()]
    for name, _ in configs:
        dataset = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset" / name), resolve=True)
        folders.append(Path(dataset.get("root") or default_root()))
        if dataset.get("labels"):
            folders.append(Path(dataset["labels"]).parent)
    return tuple(dict.fromkeys(folders))


def is_served(path: Path, folders: Sequence[Path]) -> bool:
    """True when ``path`` lies inside one of ``folders`` (both resolved)."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder.resolve()) for folder in folders)


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset lives: its root, layout and (labels layout) its ``file,label`` CSV."""

    root: Path
    layout: str = "auto"
    labels: Path | None = None

    @property
    def label(self) -> str:
        """How the app names it: the root, and the labels file if there is one."""
        return f"{self.root} ({self.labels.name})" if self.labels else str(self.root)


def dataset_sources(
    manifests: Mapping[str, Mapping[str, Any]], default: Path
) -> list[DatasetSource]:
    """The default dataset, then every other one a built index was built on (no repeats)."""
    found, served = [DatasetSource(default)], served_folders()
    for manifest in manifests.values():
        layout = (manifest.get("config", {}).get("dataset") or {}).get("layout", "auto")
        labels = manifest.get("labels")
        source = DatasetSource(
            Path(manifest.get("root", "")), layout, Path(labels) if labels else None
        )
        labels_ok = source.labels is None or is_served(source.labels, served)
        if labels_ok and is_served(source.root, served) and source != found[0]:
            found.append(source)  # a tampered manifest never points the app elsewhere
    return list(dict.fromkeys(found))


def group_sizes(dataset: Dataset) -> dict[str, int]:
    """Number of images in each group of the dataset."""
    sizes: dict[str, int] = {}
    for group in dataset.groups:
        sizes[group] = sizes.get(group, 0) + 1
    return sizes
