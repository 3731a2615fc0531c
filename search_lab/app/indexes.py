"""Built indexes as the app lists, describes and builds them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_lab.app.paths import BUILD_COMMAND, DEFAULT_INDEX_NAME, DEFAULT_INDEXES
from search_lab.app.text import describe, plain_words
from search_lab.core import manifest_of
from search_lab.retrieval import build_engine, list_engines, scan_engines, summary_config


@dataclass(frozen=True)
class IndexChoice:
    """A built index folder as the app lists it: path, its manifest's mtime, label and config."""

    path: Path
    mtime_ns: int
    label: str
    config: dict[str, Any]


def index_choices(parent: str | os.PathLike) -> list[IndexChoice]:
    """Every built index under ``parent`` with a plain-words label, sorted by folder name."""
    choices = []
    for path in list_engines(parent):
        manifest = manifest_of(path)
        mtime = (path / "manifest.json").stat().st_mtime_ns
        label = f"{path.name} — {describe(summary_config(manifest), len(manifest['names']))}"
        choices.append(IndexChoice(path, mtime, label, manifest["config"]))
    return choices


def broken_indexes(parent: str | os.PathLike) -> dict[str, str]:
    """Index folders under ``parent`` that cannot be used (folder name -> the one-line reason)."""
    return {path.name: problem for path, problem in scan_engines(parent)[1].items()}


def build_command(parent: Path, dataset_env: str | None = None) -> str:
    """The exact shell command that builds the default index into ``parent``.

    ``dataset_env`` is the ``HOLIDAYS_DIR`` the app runs with, repeated so the command reads
    the same dataset.
    """
    prefix = f"HOLIDAYS_DIR={dataset_env} " if dataset_env else ""
    suffix = "" if parent == DEFAULT_INDEXES else f" index_dir={parent / DEFAULT_INDEX_NAME}"
    return f"{prefix}{BUILD_COMMAND}{suffix}"


def default_build_config(parent: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved ``conf/build_index.yaml`` config writing the default index into ``parent``."""
    from search_lab.cli import compose_config

    wanted = ["progress=false", f"index_dir={parent / DEFAULT_INDEX_NAME}", *overrides]
    return compose_config(wanted, "build_index")


def build_with_progress(cfg: dict[str, Any], report: Callable[[float, str], None]) -> str:
    """Build and save the index ``cfg`` describes, calling ``report(fraction, text)`` as it goes.

    The fraction follows the images extracted (a ``combo`` reports each part in turn); returns
    the closing message.
    """
    report(0.0, "reading the dataset")
    feature = cfg["feature"]["name"]

    def on_image(done: int, total: int) -> None:
        report(0.05 + 0.85 * done / total, f"extracting {feature} features: {done}/{total} images")

    engine = build_engine(cfg, progress=on_image)
    report(0.9, f"saving to {cfg['index_dir']}")
    engine.save(cfg["index_dir"])
    message = f"built {cfg['index_dir']}: {len(engine.manifest['skipped'])} files skipped"
    report(1.0, message)
    return message


def manifest_row(name: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The overall figures of a built index, one table row (for the Compare page)."""
    words = plain_words(summary_config(manifest))
    return {
        "index": name,
        "feature": words["feature"],
        "metric": words["metric"],
        "search": words["index"],
        "eval mAP": None,
        "images": len(manifest["names"]),
        "skipped": len(manifest.get("skipped", {})),
        "dim": manifest.get("dim"),
        "extract_s": round(float(manifest.get("extract_s", 0.0)), 2),
        "build_s": round(float(manifest.get("build_s", 0.0)), 3),
        "created": manifest.get("created", ""),
    }


def skipped_rows(manifests: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """Files each index skipped as unreadable: one row per (index, file) with the reason."""
    return [
        {"index": index, "file": name, "reason": reason}
        for index, manifest in manifests.items()
        for name, reason in sorted(manifest.get("skipped", {}).items())
    ]
