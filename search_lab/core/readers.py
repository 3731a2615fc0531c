"""The one bounded reader of files the project did not just write: JSON, text and CSV.

Every file read back from disk (manifests, index records, ``metrics.json``, shard records,
labels CSVs, rankings, the report's run files) may have been edited, damaged or replaced by
anything: a device (``/dev/zero`` never ends), a FIFO (reading it blocks forever), a file of
gigabytes, a JSON array nested 100,000 deep (the parser's recursion limit). These readers
either return the file's content or raise :class:`UnreadableFileError`, one line naming the
file, whatever the bytes:

- only regular files are read: the file is opened without blocking (a FIFO with no writer
  opens at once) and checked with ``fstat`` on the open descriptor, so nothing is read from a
  device or a FIFO and no swap of the path between check and read can slip one in;
- at most ``max_bytes`` are read (the size is checked before reading, and the read stops one
  byte past the limit for a file that grows meanwhile);
- JSON is checked for nesting depth (``max_depth``) in one linear pass before it is parsed;
- text must decode strictly (UTF-8 unless told otherwise).

What the parsed value must look like (types, keys) stays with each reader; :func:`expect`
states one type check in one line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.core.errors import UnreadableFileError

MiB = 1 << 20
MAX_DEPTH = 64
"""Deepest JSON nesting any file of the project needs (a manifest needs 4)."""
JSON_MAX_BYTES = 256 * MiB
"""Default size bound of a JSON file: a manifest of a million names takes about 100 MB."""
RECORD_MAX_BYTES = 16 * MiB
"""Bound of the small JSON records (an index kind's record, ``shards.json``, timings)."""
TEXT_MAX_BYTES = 256 * MiB
"""Default size bound of a text file (a labels CSV, ``rankings.dat``)."""

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash escape inside a JSON string
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'[]{}"')
_CHUNK = 1 << 22
_KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def _kind(mode: int) -> str:
    return next((words for test, words in _KINDS.items() if test(mode)), "not a regular file")


def read_bytes(path: str | os.PathLike, *, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them.

    Raises FileNotFoundError when ``path`` does not exist (callers word that case) and
    UnreadableFileError when it is not a regular file, is larger than ``max_bytes`` or
    cannot be read (permissions, I/O error).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise UnreadableFileError(f"cannot read {path}: {err.strerror or err}") from err
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError(f"{path} is {_kind(info.st_mode)}, not a regular file")
        raise UnreadableFileError(f"{path} is too large ({info.st_size} bytes > {max_bytes})")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as err:
            raise UnreadableFileError(f"cannot read {path}: {err.strerror or err}") from err
    if len(data) > max_bytes:
        raise UnreadableFileError(f"{path} is too large (more than {max_bytes} bytes)")
    return data


def read_text(
    path: str | os.PathLike, *, max_bytes: int = TEXT_MAX_BYTES, encoding: str = "utf-8"
) -> str:
    """The text of the regular file ``path`` (bounded as :func:`read_bytes`), strictly decoded."""
    data = read_bytes(path, max_bytes=max_bytes)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise UnreadableFileError(
            f"{path} is not a text file ({encoding} decoding fails at byte {err.start})"
        ) from err


def read_csv(
    path: str | os.PathLike, *, max_bytes: int = TEXT_MAX_BYTES, encoding: str = "utf-8"
) -> list[list[str]]:
    """The rows of the CSV file ``path`` (bounded text, strict decoding), blank rows dropped."""
    text = read_text(path, max_bytes=max_bytes, encoding=encoding)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))  # quoted line breaks kept
    except csv.Error as err:
        raise UnreadableFileError(f"{path} is not a readable CSV ({err})") from err
    return [row for row in rows if any(cell.strip() for cell in row)]


def json_depth(data: bytes) -> int:
    """Deepest nesting of ``[``/``{`` in JSON text ``data``, strings left out (linear time).

    Escapes are dropped, then everything but brackets and quotes; a bracket counts when an
    even number of quotes precede it. Exact for valid JSON, a bound for any other bytes.
    """
    bare = _ESCAPE.sub(b"", data).translate(None, _NOT_STRUCTURAL)
    depth = peak = quotes = 0
    for start in range(0, len(bare), _CHUNK):
        chunk = np.frombuffer(bare, np.uint8, min(_CHUNK, len(bare) - start), start)
        is_quote = chunk == 0x22
        outside = (np.cumsum(is_quote) + quotes) % 2 == 0
        steps = (outside & ((chunk == 0x5B) | (chunk == 0x7B))).astype(np.int64)
        steps -= outside & ((chunk == 0x5D) | (chunk == 0x7D))
        quotes += int(is_quote.sum())
        levels = np.cumsum(steps) + depth
        peak, depth = max(peak, int(levels.max())), int(levels[-1])
    return peak


def parse_json(data: bytes, where: str | os.PathLike, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``data`` (UTF-8); UnreadableFileError naming ``where`` otherwise."""
    depth = json_depth(data)
    if depth > max_depth:
        raise UnreadableFileError(
            f"{where} is nested {depth} deep, more than the {max_depth} allowed: not a file "
            "this program wrote"
        )
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise UnreadableFileError(f"{where} is not readable JSON ({_first_line(err)})") from err


def read_json(
    path: str | os.PathLike, *, max_bytes: int = JSON_MAX_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """The JSON value of the regular file ``path``: bounded in size and depth (see module)."""
    return parse_json(read_bytes(path, max_bytes=max_bytes), path, max_depth=max_depth)


def expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is of ``kind`` (a bool never counts as a number), else one-line error.

    ``what`` names the value and its file, e.g. ``"'map' of runs/a/metrics.json"``.
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    is_bool = isinstance(value, bool) and bool not in kinds
    if not isinstance(value, kinds) or is_bool:
        names = " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)
        raise UnreadableFileError(f"{what} must be {names}, got {_short(value)}")
    return value


_TYPE_WORDS = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:200]


def is_regular(path: Path) -> bool:
    """Whether ``path`` is a regular file (following links); never reads or blocks."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False
