"""What this project may delete or overwrite: only what it wrote, recognised by a signature.

A folder is never removed because of its name or of one file's name. An index folder is
recognised by its ``manifest.json``: a JSON object with this project's ``format``, the marker
``"written_by": "search_lab"`` (folders saved before the marker are recognised by the full
manifest shape instead) and the checksum list ``files`` naming every data file. A folder is
the project's when it holds nothing else: the manifest, the verification memo and the listed
files. Replacing it then removes exactly those files (:func:`remove_listed`), never a file
the manifest does not list. :func:`folder_problem` states, in one phrase, what was found when a
folder is not such an index; ``build_index``, the results writer, the feature cache and
``data distractors --dest`` call it (or :func:`foreign_entries`) before writing.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from search_lab.core.integrity import MEMO
from search_lab.core.lifeline import is_tagged
from search_lab.core.manifest import FORMAT, MANIFEST, shape_problem

log = logging.getLogger(__name__)

MARKER_KEY = "written_by"
MARKER = "search_lab"
MAX_MANIFEST_BYTES = 256 << 20  # a manifest of 1M names is about 30 MB
SHOWN = 3  # foreign entries named in a message


def listed_files(directory: Path) -> tuple[set[str] | None, str]:
    """The files the index in ``directory`` lists (manifest and memo included), or None and why.

    Reads ``manifest.json`` only if it is a regular file of bounded size; a manifest that is
    not this project's (other format, no marker and not the full shape, no ``files`` list) is
    reported with the reason.
    """
    path = directory / MANIFEST
    if path.is_symlink() or not path.is_file():
        return (
            None,
            f"no {MANIFEST} of an index" if not path.exists() else f"{MANIFEST} is not a file",
        )
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        return None, f"a {MANIFEST} of {path.stat().st_size} bytes"
    try:
        manifest: Any = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as err:
        return None, f"a {MANIFEST} that is not JSON ({type(err).__name__})"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None, f"a {MANIFEST} that search_lab did not write (no index format {FORMAT})"
    files = manifest.get("files")
    if manifest.get(MARKER_KEY) != MARKER and shape_problem(manifest) is not None:
        return None, f"a {MANIFEST} that search_lab did not write (no {MARKER_KEY!r} marker)"
    if not isinstance(files, dict) or not all(isinstance(n, str) for n in files):
        return None, f"a {MANIFEST} without its list of files"
    return {*files, MANIFEST, MEMO}, ""


def foreign_entries(directory: Path, allowed: Iterable[str]) -> list[str]:
    """Entries under ``directory`` that are not in ``allowed`` (relative POSIX names), sorted.

    A folder is foreign unless some allowed file lies inside it; a symbolic link counts as the
    link itself (never followed).
    """
    allowed = set(allowed)
    parents = {str(Path(name).parent.as_posix()) for name in allowed}
    parents |= {p.as_posix() for name in allowed for p in Path(name).parents}
    found = []
    for root, dirs, names in os.walk(directory):
        rel = Path(root).relative_to(directory)
        for name in names:
            if (rel / name).as_posix() not in allowed:
                found.append((rel / name).as_posix())
        for name in list(dirs):
            sub = (rel / name).as_posix()
            if sub not in parents or (Path(root) / name).is_symlink():
                found.append(sub + "/")
                dirs.remove(name)  # its content is foreign too: named once, by the folder
    return sorted(found)


def folder_problem(directory: str | os.PathLike) -> str | None:
    """Why ``directory`` may not be replaced by an index (one phrase), or None when it may.

    None for a missing or empty folder, and for an index folder this project wrote that holds
    nothing but its listed files; otherwise what was found (a file, a foreign manifest, files
    the index does not list).
    """
    directory = Path(directory)
    if not directory.exists() and not directory.is_symlink():
        return None
    if directory.is_symlink() or not directory.is_dir():
        return "it is not a folder"
    entries = sorted(p.name for p in directory.iterdir())
    if not entries:
        return None
    allowed, why = listed_files(directory)
    if allowed is None:
        return f"it holds {why} ({_names(entries)})"
    foreign = foreign_entries(directory, allowed)
    if foreign:
        return f"it holds files its index did not write ({_names(foreign)})"
    return None


RUN_SIGNATURE = ("config", "map", "per_query_ap")
"""Keys every ``metrics.json`` an evaluation writes holds: how a run folder is recognised."""


def run_folder_problem(directory: Path, outputs: Iterable[str], metrics: str) -> str | None:
    """Why an evaluation may not write ``outputs`` into ``directory`` (one phrase), or None.

    Writing replaces files of those names. That is only done where none exists yet or where
    ``metrics`` is one an evaluation wrote (a JSON object with :data:`RUN_SIGNATURE`'s keys):
    a re-run of the same folder. Files of other names are never touched.
    """
    present = [name for name in outputs if (directory / name).exists()]
    if not present:
        return None
    path = directory / metrics
    try:
        small = path.is_file() and path.stat().st_size <= MAX_MANIFEST_BYTES
        saved = json.loads(path.read_bytes()) if small else None
    except (OSError, ValueError, RecursionError):
        saved = None
    if isinstance(saved, dict) and all(key in saved for key in RUN_SIGNATURE):
        return None
    foreign = [name for name in present if not _is_rankings(directory / name)]
    if not foreign:  # a run killed between its rankings and its metrics.json: resumed
        return None
    return f"it holds {_names(foreign)}, which no evaluation of search_lab wrote"


_RANKED = re.compile(r"\S+(?: \d+ \S+)+")


def _is_rankings(path: Path, probe: int = 1 << 16) -> bool:
    """Whether ``path`` reads as rankings an evaluation writes (Holidays format: ``query 0
    name 1 name ...``, ranks from 0 in order), judged on its first ``probe`` bytes."""
    if path.name != "rankings.dat" or not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(probe).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    lines = head.split("\n")[:-1] if len(head) == probe else head.splitlines()
    for line in lines:
        if not _RANKED.fullmatch(line):
            return False
        ranks = line.split(" ")[1::2]
        if not ranks or ranks != [str(i) for i in range(len(ranks))]:
            return False
    return bool(lines)


def unmatched_entries(directory: Path, pattern: re.Pattern[str]) -> list[str]:
    """Entries of ``directory`` (not recursive) whose names ``pattern`` does not fully match.

    For folders this project fills with files of one naming scheme (``data distractors
    --dest``): anything else there was written by someone else. Temporary files of ours
    (tagged, see :func:`search_lab.core.lifeline.is_tagged`) count as ours.
    """
    if not directory.is_dir():
        return []
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in directory.iterdir()
        if not pattern.fullmatch(p.name) and not is_tagged(p)
    )


def describe_entries(names: list[str]) -> str:
    """The first few names, quoted, and how many more (for one-line messages)."""
    return _names(names)


def _names(names: list[str]) -> str:
    """The first few names, quoted, and how many more."""
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def remove_listed(directory: Path, allowed: Iterable[str]) -> list[str]:
    """Delete the ``allowed`` files of ``directory``, then its folders left empty.

    Returns what remains (entries written by someone else since the folder was checked); the
    folder itself is removed only when nothing remains, else it is kept with a warning.
    """
    for name in allowed:
        path = directory / name
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
    for root in sorted((w[0] for w in os.walk(directory)), key=len, reverse=True):
        if Path(root) != directory and not any(Path(root).iterdir()):
            Path(root).rmdir()
    left = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    if left:
        log.warning("%s kept: it holds files no index listed (%s)", directory, _names(left))
    elif directory.is_dir():
        directory.rmdir()
    return left


def discard_index(directory: Path) -> None:
    """Remove an old index folder (a swap left it aside): its listed files only, then the folder.

    A folder that is no longer recognisable as an index is left where it is, with a warning.
    """
    if directory.is_dir() and not any(directory.iterdir()):  # an empty folder was replaced
        directory.rmdir()
        return
    allowed, why = listed_files(directory)
    if allowed is None:
        log.warning("%s kept: it holds %s", directory, why)
        return
    remove_listed(directory, allowed)
