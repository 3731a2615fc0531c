"""An index folder's life on disk: staging a new one, replacing an old one, listing those under a
folder.

Every write goes to a temporary folder beside the target, renamed into place only when
complete (:mod:`search_lab.core.swap`), and only a folder this project wrote is ever replaced
(:mod:`search_lab.core.ownership`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from search_lab.core import (
    MANIFEST,
    ConfigError,
    IndexMismatchError,
    is_tagged,
    manifest_of,
    names_problem,
    owner_tag,
    ownership,
    remove_stale,
    root_problem,
    swap,
)

log = logging.getLogger(__name__)


def staging_dir(directory: Path) -> Path:
    """A new empty folder beside ``directory`` that :func:`replace_dir` renames into it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(directory)
    tmp = Path(
        tempfile.mkdtemp(
            prefix=f".{directory.name}.{owner_tag()}", suffix=".tmp", dir=directory.parent
        )
    )
    tmp.chmod(0o755)  # mkdtemp's 0700 would keep other users' app processes from the mmap
    return tmp


def check_confined(
    directory: Path, manifest: dict[str, Any], roots: list[str | os.PathLike] | None
) -> None:
    """Refuse a manifest whose dataset folder or image names lead where they must not."""
    problem = names_problem(manifest["names"])
    if problem is None and roots is not None:
        problem = root_problem(Path(manifest["root"]), [*roots, directory])
    if problem:
        raise IndexMismatchError(f"{directory}: {problem}")


def check_expectations(directory: Path, manifest: dict[str, Any], expect: dict[str, Any]) -> None:
    """Raise IndexMismatchError naming the first expected value the manifest contradicts."""
    actual = {
        "feature": manifest["config"]["feature"],
        "metric": manifest["config"]["metric"]["name"],
        "dim": manifest["dim"],
    }
    for key, wanted in expect.items():
        if wanted is not None and actual[key] != wanted:
            raise IndexMismatchError(
                f"{directory} was built with {key} {actual[key]!r}, but {wanted!r} was asked for"
            )


def _remove_stale(directory: Path, age_s: float = 600.0) -> None:
    """Delete temp folders of killed builds of ``directory`` (writer dead, or ``age_s`` old)."""
    prefix = f".{directory.name}."  # no glob: folder names may hold ``*`` or ``[``
    temps = [p for p in directory.parent.iterdir() if p.name.startswith(prefix)]
    remove_stale([p for p in temps if p.name.endswith(".tmp") and is_tagged(p)], age_s)


def replace_dir(tmp: Path, directory: Path) -> None:
    """Move ``tmp`` to ``directory``, replacing an older one; never a half-built or missing one."""
    swap.recover(directory)
    swap.discard_aside(directory)
    check_replaceable(directory)
    swap.replace_dir(tmp, directory)


def check_replaceable(directory: Path) -> None:
    """ConfigError unless ``directory`` is absent, empty or an index folder this project wrote.

    Called before any work by ``build_index`` and again right before the replacement.
    """
    if problem := ownership.folder_problem(directory):
        raise ConfigError(
            f"{directory} is not an index folder search_lab wrote: {problem}; refusing to "
            "replace it (nothing was deleted): choose another index_dir"
        )


def list_engines(parent: str | os.PathLike) -> list[Path]:
    """Index folders under ``parent`` with a sound manifest, sorted by name.

    A folder whose manifest cannot be read or has the wrong shape is left out with a warning
    (see :func:`scan_engines`), so one broken index never hides the others.
    """
    good, broken = scan_engines(parent)
    for problem in broken.values():
        log.warning("%s", problem)
    return good


def scan_engines(parent: str | os.PathLike) -> tuple[list[Path], dict[Path, str]]:
    """Index folders under ``parent``: those with a sound manifest, and the others' problems."""
    parent = Path(parent)
    if not parent.is_dir():
        return [], {}
    swap.recover_all(parent)
    good, broken = [], {}
    for path in sorted(p for p in parent.iterdir() if (p / MANIFEST).is_file()):
        if path.name.startswith("."):
            continue
        try:
            manifest_of(path)
        except IndexMismatchError as err:
            broken[path] = str(err)
            continue
        good.append(path)
    return good, broken
