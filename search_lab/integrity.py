"""Checksums of the data files an index folder holds: recorded when written, verified when read.

The hash is xxHash's XXH3-128 (about 4 GB/s on one core here, against 0.5 GB/s for BLAKE2b),
so a full check of a 512 MB memory-mapped matrix costs a fraction of a second. ``record``
describes every file of a folder (size and digest); ``problem`` compares a folder with such a
record and returns one line naming the first file that differs, or None.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path, PurePosixPath
from typing import Any

import xxhash

HASH = "xxh3_128"


def digest(data: bytes | memoryview) -> str:
    """XXH3-128 of a buffer, as hex."""
    return xxhash.xxh3_128_hexdigest(data)


def file_digest(path: str | os.PathLike) -> str:
    """XXH3-128 of a file's bytes, hashed straight from a read-only memory map (no copy)."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return digest(b"")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return digest(mapped)


def record(directory: str | os.PathLike, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``{relative path: {"bytes": size, HASH: digest}}`` of every file under ``directory``."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {
        p.relative_to(directory).as_posix(): {"bytes": p.stat().st_size, HASH: file_digest(p)}
        for p in files
        if p.relative_to(directory).as_posix() not in skip
    }


def _inside(directory: Path, name: str) -> Path | None:
    """``directory / name`` when ``name`` is a plain relative path (no ``..``, not absolute)."""
    pure = PurePosixPath(name)
    if not name or "\0" in name or pure.is_absolute() or ".." in pure.parts:
        return None
    return directory / pure


def problem(directory: str | os.PathLike, recorded: Any, *, full: bool = True) -> str | None:
    """The first file of ``directory`` that does not match ``recorded``, as one line; else None.

    ``full=False`` compares sizes only (no byte is read); ``full=True`` also recomputes every
    digest, which catches same-size damage such as flipped bytes.
    """
    directory = Path(directory)
    if not isinstance(recorded, dict) or not recorded:
        return f"{directory} records no checksums of its files"
    for name, entry in recorded.items():
        path = _inside(directory, name)
        if path is None or not isinstance(entry, dict):
            return f"{directory} records a checksum for {name!r}, which is not a file name"
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != entry.get("bytes"):
            return f"{path} has {size} bytes, {entry.get('bytes')} were written (truncated?)"
        if full and file_digest(path) != entry.get(HASH):
            return f"{path} is damaged: its {HASH} checksum differs from the one recorded"
    return None
