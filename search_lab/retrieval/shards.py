"""Feature shards on disk: a folder of ``.npy`` matrices read one at a time, memory-mapped.

A collection too large for memory is kept as ``shard-00000.npy``, ``shard-00001.npy``, ... (float32,
same width) plus ``shards.json`` recording each file's rows and XXH3-128 checksum. Readers get
one memory-mapped shard at a time (:meth:`ShardSet.blocks`), checked against the record, so an
index can be built out of core (``Index.build_streaming``) with memory bounded by one shard.
Every file is written atomically; a damaged or truncated shard is one clear error, never
silently wrong vectors.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.core import (
    RECORD_MAX_BYTES,
    DatasetError,
    atomic_write_bytes,
    expect,
    integrity,
    is_regular,
    read_json,
)

RECORD = "shards.json"
FORMAT = 1


def shard_file(i: int) -> str:
    """File name of shard ``i``."""
    return f"shard-{i:05d}.npy"


def _npy_bytes(block: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(block, dtype=np.float32))
    return buffer.getvalue()


def write_shards(folder: str | os.PathLike, blocks: Iterable[np.ndarray]) -> ShardSet:
    """Write each (rows, D) block as one shard, then the record; returns the set.

    Only one block is held at a time, so the blocks may come from a generator.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries, dim = [], None
    for i, block in enumerate(blocks):
        if block.ndim != 2 or (dim is not None and block.shape[1] != dim):
            raise ValueError(f"shard {i}: expected rows of width {dim}, got shape {block.shape}")
        dim = block.shape[1]
        data = _npy_bytes(block)
        atomic_write_bytes(folder / shard_file(i), data)
        entries.append({"file": shard_file(i), "rows": len(block), integrity.HASH: _digest(data)})
    record = {"format": FORMAT, "dim": dim, "dtype": "float32", "shards": entries}
    atomic_write_bytes(folder / RECORD, json.dumps(record, indent=1).encode())
    return ShardSet.open(folder)


def _digest(npy: bytes | memoryview) -> str:
    return integrity.digest(npy)


def _check_entry(entry: Any) -> None:
    """ValueError unless ``entry`` names a file of this folder, its rows and its checksum."""
    entry = expect(entry, dict, "a shard entry")
    name = expect(entry.get("file"), str, "a shard's 'file'")
    rows = expect(entry.get("rows"), int, "a shard's 'rows'")
    expect(entry.get(integrity.HASH), str, f"a shard's {integrity.HASH!r}")
    if not name or Path(name).name != name or name in (".", "..") or rows <= 0:
        raise ValueError(f"bad shard entry {entry!r}"[:200])


@dataclass(frozen=True)
class ShardSet:
    """A checked shard record: the folder, the width and each shard's file, rows and checksum."""

    folder: Path
    dim: int
    entries: tuple[dict[str, Any], ...]

    @property
    def rows(self) -> int:
        """Rows in all shards together."""
        return sum(int(e["rows"]) for e in self.entries)

    @classmethod
    def open(cls, folder: str | os.PathLike) -> ShardSet:
        """Read ``shards.json``; DatasetError if it is missing, garbled or names a missing file."""
        folder = Path(folder)
        try:
            record = expect(read_json(folder / RECORD, max_bytes=RECORD_MAX_BYTES), dict, RECORD)
            dim = expect(record.get("dim"), int, "'dim'")
            entries = tuple(expect(record.get("shards"), list, "'shards'"))
            if record.get("format") != FORMAT or not entries or dim <= 0:
                raise ValueError("unknown format, no shard or no width")
            for e in entries:
                _check_entry(e)
        except FileNotFoundError as err:
            raise DatasetError(f"{folder} holds no feature shards ({RECORD} missing)") from err
        except (OSError, ValueError, KeyError, TypeError) as err:
            problem = f"{folder / RECORD} is damaged ({err}); write the shards again"
            raise DatasetError(problem) from err
        for e in entries:
            if not is_regular(folder / e["file"]):  # (is_file raises on a name too long)
                raise DatasetError(f"feature shard {folder / e['file']} is missing")
        return cls(folder, dim, entries)

    def blocks(self, *, verify: bool = True) -> Iterator[np.ndarray]:
        """Each shard in turn, memory-mapped read-only and checked (shape, dtype, checksum).

        A shard's pages are dropped once the caller moves on to the next one, so only one
        shard is resident at a time.
        """
        for e in self.entries:
            path = self.folder / e["file"]
            if verify and integrity.file_digest(path) != e[integrity.HASH]:
                raise DatasetError(
                    f"feature shard {path} is damaged (checksum differs from {RECORD}); "
                    "write the shards again"
                )
            try:
                block = np.load(path, mmap_mode="r")
            except (OSError, ValueError, EOFError) as err:
                raise DatasetError(f"feature shard {path} is not a numpy matrix ({err})") from err
            if block.shape != (int(e["rows"]), self.dim) or block.dtype != np.float32:
                raise DatasetError(
                    f"feature shard {path} holds {block.dtype} {block.shape}, "
                    f"{RECORD} says float32 ({e['rows']}, {self.dim})"
                )
            yield block
            del block
