"""Checksums of the data files an index folder holds: recorded when written, verified when read.

The hash is xxHash's XXH3-128 (about 4 GB/s on one core here, against 0.5 GB/s for BLAKE2b),
so a full check of a 512 MB memory-mapped matrix costs a fraction of a second. ``record``
describes every file of a folder (size and digest); ``problem`` compares a folder with such a
record and returns one line naming the first file that differs, or None.

A file hashed once is not hashed again while it stays the same file: ``problem`` keeps, in the
folder's ``.verified.json``, each verified file's device, inode, size, mtime and ctime. The
kernel sets ctime on every change to a file and no tool can set it back, so a file whose five
values match was not written since it was verified (git's index relies on the same stat data).
Files changed less than ``RACY_NS`` before they were verified are not remembered: a write in the
same clock tick would leave their times unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path, PurePosixPath
from typing import Any

import xxhash

from search_lab.core import files, readers

log = logging.getLogger(__name__)

HASH = "xxh3_128"
MEMO = ".verified.json"  # stat data of the files last verified; never listed in a record
CHUNK = 8 << 20  # bytes read per call when hashing a file
RACY_NS = 2_000_000_000  # files changed this recently are re-hashed on the next load


def digest(data: bytes | memoryview) -> str:
    """XXH3-128 of a buffer, as hex."""
    return xxhash.xxh3_128_hexdigest(data)


def file_digest(path: str | os.PathLike) -> str:
    """XXH3-128 of a file's bytes, read in 8 MB chunks into one reused buffer.

    Not through a memory map: mapped pages count as the process's resident memory, so hashing
    a 600 MB index just written (and mapped) by Annoy would double its peak memory.
    """
    state, buffer = xxhash.xxh3_128(), bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            state.update(view[:n])
    return state.hexdigest()


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (:func:`hashlib.file_digest`): the digest a download publishes,
    and the one index records held before XXH3 (:data:`HASH`) replaced it."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def record(directory: str | os.PathLike, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``{relative path: {"bytes": size, HASH: digest}}`` of every file under ``directory``."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    skip = skip | {MEMO}
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


def problem(
    directory: str | os.PathLike, recorded: Any, *, full: bool = True, rehash: bool = False
) -> str | None:
    """The first file of ``directory`` that does not match ``recorded``, as one line; else None.

    ``full=False`` compares sizes only (no byte is read); ``full=True`` also checks every
    digest, which catches same-size damage such as flipped bytes: a file unchanged since it was
    last verified (see the module's note) is not re-hashed unless ``rehash``.
    """
    directory = Path(directory)
    if not isinstance(recorded, dict) or not recorded:
        return f"{directory} records no checksums of its files"
    memo = _read_memo(directory) if full else {}
    verified: dict[str, list] = {}
    for name, entry in recorded.items():
        path = _inside(directory, name)
        if path is None or not isinstance(entry, dict):
            return f"{directory} records a checksum for {name!r}, which is not a file name"
        if not path.is_file():
            return f"{path} is missing"
        stat = path.stat()
        if stat.st_size != entry.get("bytes"):
            return (
                f"{path} has {stat.st_size} bytes, {entry.get('bytes')} were written (truncated?)"
            )
        if not full:
            continue
        seen = [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
        seen.append(entry.get(HASH))
        if (rehash or memo.get(name) != seen) and file_digest(path) != entry.get(HASH):
            return f"{path} is damaged: its {HASH} checksum differs from the one recorded"
        if time.time_ns() - stat.st_ctime_ns > RACY_NS:
            verified[name] = seen
    if full:
        verified |= {name: seen for name, seen in memo.items() if name not in recorded}
        if verified != memo:
            _write_memo(directory, verified)
    return None


def _read_memo(directory: Path) -> dict[str, Any]:
    """The folder's memo of verified files; empty when absent or unreadable (all re-hashed)."""
    try:
        memo = readers.read_json(directory / MEMO, max_bytes=readers.RECORD_MAX_BYTES)
    except (OSError, ValueError):  # UnreadableFileError: a FIFO, huge, deep, not JSON
        return {}
    return memo if isinstance(memo, dict) else {}


def _write_memo(directory: Path, verified: dict[str, list]) -> None:
    """Remember the verified files; a read-only folder only means they are hashed next time."""
    try:
        files.atomic_write_bytes(directory / MEMO, json.dumps(verified).encode())
    except OSError as err:
        log.debug("cannot remember verified files in %s: %s", directory, err)
