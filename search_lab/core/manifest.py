"""An index folder's ``manifest.json``: reading it, its required shape, where its names may lead.

A manifest is data read from disk: :func:`shape_problem` checks its shape (keys and types)
before anything indexes into it, and :func:`root_problem` / :func:`names_problem` confine the
dataset folder and every image name it lists, so an edited manifest can neither crash a
reader nor point it at files outside the collection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from search_lab.core.errors import IndexMismatchError, UnreadableFileError
from search_lab.core.readers import read_json

MANIFEST = "manifest.json"
FORMAT = 2  # 2: checksums of every data file ("files"), exact.json beside vectors.npy
REBUILD = "rebuild it with `python -m search_lab.build_index`"
_SECTIONS = ("feature", "metric", "index")
_TYPES: dict[str, tuple[type, str]] = {
    "config": (dict, "an object"),
    "root": (str, "a folder name"),
    "names": (list, "a list of file names"),
    "dim": (int, "a positive integer"),
    "files": (dict, "an object of checksums"),
}


def shape_problem(manifest: Any) -> str | None:
    """What is wrong with the manifest's shape (one phrase), or None if it has the right one."""
    if not isinstance(manifest, dict):
        return f"holds {type(manifest).__name__} instead of an object"
    for key, (kind, words) in _TYPES.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"'{key}' must be {words}, got {_short(value)}"
    if manifest["dim"] <= 0:
        return f"'dim' must be a positive integer, got {manifest['dim']}"
    for section in _SECTIONS:
        part = manifest["config"].get(section)
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            return f"'config.{section}' must be an object with a 'name', got {_short(part)}"
    for section in ("dataset", "post"):
        if not isinstance(manifest["config"].get(section, {}), dict):
            return (
                f"'config.{section}' must be an object, got {_short(manifest['config'][section])}"
            )
    if not set(map(type, manifest["names"])) <= {str}:
        return "'names' must hold file names (strings) only"
    if not isinstance(manifest.get("skipped", {}), dict):
        return f"'skipped' must be an object, got {_short(manifest['skipped'])}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def names_problem(names: Sequence[str]) -> str | None:
    """The first name that is not a plain relative path (absolute, ``..``, NUL), or None."""
    blob = "\n".join(names)  # one pass in C first: 1M plain names are cleared in ~20 ms
    marks = ("..", "\0", "\n/", "\n\n")
    edges = blob.startswith("/") or blob.endswith("\n") or "" in names[:1]
    if not edges and not any(m in blob for m in marks):
        return None
    suspects = [n for n in names if not n or n[0] in "/\\" or ".." in n or "\0" in n]
    for name in suspects:
        pure = PurePosixPath(name)
        if not name or "\0" in name or pure.is_absolute() or ".." in pure.parts:
            return f"the image name {name!r} leads outside the dataset folder"
    return None


def root_problem(root: Path, allowed: Sequence[str | os.PathLike]) -> str | None:
    """Why ``root`` is refused when it lies outside every folder of ``allowed``, else None."""
    resolved = root.resolve()
    bases = [Path(a).resolve() for a in allowed]
    if any(resolved.is_relative_to(base) for base in bases):
        return None
    return (
        f"its dataset folder {root} is outside the folders this program serves "
        f"({', '.join(str(b) for b in bases)}); rebuild the index from that dataset"
    )


def path_in(root: Path, name: str) -> Path:
    """``root / name`` for a name :func:`names_problem` accepted (resolved lexically)."""
    return Path(os.path.normpath(root / name))


def manifest_of(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of an index folder, without loading the index.

    Raises IndexMismatchError when it is missing, not JSON, of another format or of the
    wrong shape (a list, no ``config``, a wrong type).
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise IndexMismatchError(
            f"{directory} is not a built index (no {MANIFEST}); "
            "build one with `python -m search_lab.build_index`"
        )
    try:
        manifest = read_json(path)
    except (OSError, UnreadableFileError) as err:  # a special file, too large or deep, not JSON
        detail = str(err).removeprefix(str(path)).strip() if isinstance(err, ValueError) else err
        problem = f"{path} is unreadable: it cannot be read as a manifest ({detail}); {REBUILD}"
        raise IndexMismatchError(problem) from err
    if isinstance(manifest, dict) and manifest.get("format") != FORMAT:
        raise IndexMismatchError(
            f"{directory} has index format {manifest.get('format')}, expected {FORMAT}; {REBUILD}"
        )
    if problem := shape_problem(manifest) or values_problem(manifest):
        raise IndexMismatchError(f"{path} is malformed: {problem}; {REBUILD}")
    return manifest


_OPTIONAL: dict[str, tuple[tuple[type, ...], str]] = {
    "labels": ((str, type(None)), "a file name or null"),
    "fingerprint": ((str,), "a string"),
    "version": ((str,), "a string"),
    "created": ((str,), "a string"),
    "extract_s": ((int, float), "a number"),
    "build_s": ((int, float), "a number"),
}


def values_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a value beyond the required shape (types of the optional keys,
    the dataset section and the skipped files' reasons), or None.

    Called after :func:`shape_problem`; whatever a reader of a loaded index uses is checked.
    """
    for key, (kinds, words) in _OPTIONAL.items():
        value = manifest.get(key, kinds[0]())
        if not isinstance(value, kinds) or isinstance(value, bool):
            return f"'{key}' must be {words}, got {_short(value)}"
    dataset = manifest["config"].get("dataset", {})
    for key in ("layout", "labels", "root"):
        if not isinstance(dataset.get(key, ""), str | None):
            return f"'config.dataset.{key}' must be a string, got {_short(dataset[key])}"
    if not all(isinstance(v, str) for v in manifest.get("skipped", {}).values()):
        return "'skipped' must map file names to reasons (strings)"
    return None
