"""Replace a folder by another without a moment where neither exists, and recover if killed.

On Linux ``renameat2(RENAME_EXCHANGE)`` swaps the two names in one atomic step, so a reader
sees the old folder or the new one, never a gap. Elsewhere (or on a file system without it)
the old folder is first renamed aside to ``.<name>.old-<pid>``; a process killed right after
that leaves the folder missing, and :func:`recover` (run by the next load, listing or build)
renames the old copy back. The old folder is then deleted file by file, only the files its
manifest lists (:func:`search_lab.core.ownership.discard_index`): never what its index did not
write.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import sys
from pathlib import Path

from search_lab.core.ownership import discard_index

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM}


def _renameat2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``renameat2``, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_RENAMEAT2 = _renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` atomically; False when the system cannot (nothing moved)."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a))


def aside_name(directory: Path) -> Path:
    """Where the two-rename fallback parks the old folder while the new one moves in."""
    return directory.with_name(f".{directory.name}.old-{os.getpid()}")


def replace_dir(new: Path, directory: Path) -> None:
    """Move folder ``new`` to ``directory``, replacing any older index (then deleting its files).

    The caller has checked that an existing ``directory`` is an index folder this project wrote
    (:func:`search_lab.core.ownership.folder_problem`).
    """
    if not directory.exists():
        os.replace(new, directory)
        return
    if exchange(new, directory):
        discard_index(new)  # ``new`` now holds the old folder
        return
    old = aside_name(directory)
    os.replace(directory, old)
    os.replace(new, directory)
    discard_index(old)


def recover(directory: Path) -> bool:
    """Put back the old copy a replacement killed between its two renames left aside.

    Returns True when ``directory`` was missing and has been restored.
    """
    if directory.exists():
        return False
    for old in sorted(directory.parent.glob(f".{glob_escape(directory.name)}.old-*")):
        try:
            os.replace(old, directory)
        except OSError:
            continue  # another process restored it first
        log.warning("%s was missing (interrupted replacement): restored from %s", directory, old)
        return True
    return False


def discard_aside(directory: Path) -> None:
    """Delete old copies that replacements killed after their second rename left beside it."""
    if directory.exists():
        for old in directory.parent.glob(f".{glob_escape(directory.name)}.old-*"):
            discard_index(old)


def recover_all(parent: Path) -> None:
    """Run :func:`recover` for every folder of ``parent`` left aside by a killed replacement."""
    for old in parent.glob(".*.old-*"):
        recover(parent / old.name[1:].rsplit(".old-", 1)[0])


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
