"""The one atomic file write: a temporary file in the same folder, fsync, then a rename.

A reader sees either the old file or the whole new one, never a half-written file, even when
the writer is killed. Temporary names carry the writer's host and pid (:func:`owner_tag`), so
:func:`remove_leftovers` can delete what a dead writer left without touching a live one's.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from search_lab.core.lifeline import is_tagged, owner_tag, remove_stale

TMP_SUFFIX = ".tmp"


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete temporary files that killed atomic writes left in ``folder`` (no live writer's).

    Only names carrying a writer's tag (:func:`owner_tag`, which only this project writes) are
    candidates: a ``.notes.tmp`` of the user's in a run folder or the cache is never touched.
    """
    if not folder.is_dir():
        return []
    return remove_stale(p for p in folder.glob(f".*{TMP_SUFFIX}") if is_tagged(p))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, then rename it to ``path``.

    The temporary file is flushed and fsynced before the rename and deleted if anything fails
    (``path`` then keeps its old content). The result is readable by all (mode 0644).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{owner_tag()}"  # lets a later run tell a dead writer's leftover
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from other users and processes
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:  # a full disk's write() error carries no path: name the file
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:
            err.filename = str(path)
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode())


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EROFS)


def library_write(path: str | os.PathLike, write: Callable[[], object]) -> Path:
    """Call a library's ``write()`` of ``path`` (Faiss, hnswlib, Annoy, numpy), then fsync it.

    Whatever fails comes out as an OSError naming ``path``: an OSError without a file name
    gets it, and a library's own exception (Faiss raises RuntimeError on a full disk) becomes
    the OSError of the errno its message names (EIO when it names none), so the command says
    ``cannot write <path>: No space left on device``. The fsync reports what a delayed
    allocation only finds out then.
    """
    path = Path(path)
    try:
        write()
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except (OSError, RuntimeError) as err:
        if isinstance(err, OSError) and err.errno is not None and err.filename is not None:
            raise
        code = err.errno if isinstance(err, OSError) and err.errno else _errno_named(str(err))
        if code == errno.EIO and _disk_full(path):  # numpy: "n requested and m written"
            code = errno.ENOSPC
        raise OSError(code, os.strerror(code), str(path)) from err
    return path


def _disk_full(path: Path) -> bool:
    """Whether the file system of ``path``'s folder has no block left for a user's file."""
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def _errno_named(message: str) -> int:
    """The write errno whose text ``message`` holds (Faiss, Annoy, numpy word it), else EIO."""
    return next((c for c in _WRITE_ERRNOS if os.strerror(c) in message), errno.EIO)


@contextmanager
def temporary_dir(final: str | os.PathLike, tag: str = ".") -> Iterator[Path]:
    """A new folder next to ``final`` to fill and then rename onto it; removed on exit.

    Same file system as ``final`` (so the rename is atomic), named ``.<name><tag><owner>...tmp``
    so :func:`remove_leftovers`-style clean-ups can tell a dead writer's, mode 0755 (mkdtemp's
    0700 would hide the folder from other users once renamed). Whatever is still there on exit
    (all of it, when the caller did not rename it) is deleted.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}{tag}{owner_tag()}"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=TMP_SUFFIX, dir=final.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int | None = None) -> Path:
    """Write ``data`` as JSON (plus a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n")
