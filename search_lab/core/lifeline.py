"""Child processes that die with their parent, and clean-up of what killed writers left behind.

A worker (an extraction process, a joblib sweep job) calls :func:`die_with_parent` first: on
Linux the kernel sends it SIGKILL the moment its parent dies (``PR_SET_PDEATHSIG``), and on
every system a daemon thread notices within ``interval`` seconds that it has been re-parented
and ends the process. So a ``kill -9`` of a run or a sweep leaves no worker running or writing.

Temporary files and folders carry their writer's host and pid in their name
(:func:`owner_tag`); :func:`remove_stale` deletes those whose writer on this host is dead, and
any older than ``max_age_s`` (writers on other hosts sharing the folder, untagged leftovers).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_INTERVAL_S = 0.5
STALE_AGE_S = 3600.0  # an untagged or foreign temporary file this old is no longer being written
_TAG = re.compile(r"@([\w.-]+)-(\d+)@")
_WATCHED: dict[int, int] = {}  # pid -> the parent its watchdog watches (forks copy this dict)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, interval: float) -> None:
    """Poll the parent pid; end this process at once when it changes (the parent died)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)  # no clean-up: the run this worker served is gone
        time.sleep(interval)


def start_watchdog(parent: int, interval: float = WATCH_INTERVAL_S) -> threading.Thread:
    """A daemon thread that ends this process within ``interval`` s of ``parent`` dying."""
    thread = threading.Thread(
        target=_watch, args=(parent, interval), name="parent-watchdog", daemon=True
    )
    thread.start()
    return thread


def die_with_parent(parent: int | None = None, *, pdeathsig: bool = True) -> None:
    """Make this process end when ``parent`` (default: the current parent) dies.

    ``pdeathsig=False`` relies on the watchdog alone: Linux fires the parent-death signal when
    the *thread* that forked this process exits, which is only safe when that thread lives as
    long as the parent process (true for our own process pools, not for every library's).
    """
    parent = os.getppid() if parent is None else parent
    if _WATCHED.get(os.getpid()) == parent:
        return  # a reused worker process: already armed
    _WATCHED[os.getpid()] = parent
    if pdeathsig:
        set_parent_death_signal()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    start_watchdog(parent)


def _host() -> str:
    return re.sub(r"[^\w.-]", "_", socket.gethostname()) or "host"


def owner_tag() -> str:
    """``@host-pid@``: put into temporary names so a later run can tell whether the writer lives."""
    return f"@{_host()}-{os.getpid()}@"


def is_tagged(path: Path) -> bool:
    """Whether ``path``'s name carries a writer's tag (:func:`owner_tag`): a temporary of ours."""
    return _TAG.search(path.name) is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _newest_mtime(path: Path) -> float:
    """Latest modification time of ``path`` or, for a folder, of anything directly inside it."""
    times = [path.lstat().st_mtime]
    if path.is_dir() and not path.is_symlink():
        times += [child.lstat().st_mtime for child in path.iterdir()]
    return max(times)


def is_stale(path: Path, max_age_s: float = STALE_AGE_S) -> bool:
    """Whether the temporary ``path`` is a dead writer's leftover (safe to delete).

    A name tagged by a process on this host is stale once that process is gone (its pid is
    rechecked against the file's age, so a recycled pid only delays the clean-up); anything
    else is stale once nothing in it has changed for ``max_age_s`` seconds.
    """
    try:
        age = time.time() - _newest_mtime(path)
    except FileNotFoundError:
        return False
    tags = _TAG.findall(path.name)  # the last one: the file's own name may hold anything
    if tags and tags[-1][0] == _host():
        pid = int(tags[-1][1])
        return pid != os.getpid() and (not _pid_alive(pid) or age > max_age_s)
    return age > max_age_s


def remove_stale(paths: Iterable[Path], max_age_s: float = STALE_AGE_S) -> list[Path]:
    """Delete the stale temporary files and folders among ``paths``; returns what was removed."""
    removed = []
    for path in paths:
        if not is_stale(path, max_age_s):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue  # another run cleaned it first
        except OSError as err:
            log.warning("cannot remove the leftover %s: %s", path, err)
            continue
        log.info("removed %s, left by a killed writer", path)
        removed.append(path)
    return removed
