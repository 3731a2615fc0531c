"""Peak resident memory, as the operating system counts it (C++ allocations included)."""

from __future__ import annotations

import re
import resource
import threading
from pathlib import Path

import psutil

MB = 2**20


def proc_status(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status in bytes, or None where there is no procfs."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    ``VmHWM`` on Linux (reset by exec, unlike ``ru_maxrss``, which a child inherits from the
    process that started it), else ``ru_maxrss``.
    """
    hwm = proc_status("VmHWM")
    if hwm is not None:
        return hwm / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRSS:
    """Peak resident memory (RSS) added to this process inside a ``with`` block, in bytes.

    Annoy allocates in C++, which ``tracemalloc`` never sees, so the operating system is asked:
    on Linux the kernel's high-water mark (``VmHWM``) is reset to the current RSS by writing
    ``5`` to ``/proc/self/clear_refs`` and read back at the end, which catches even a brief
    peak. Elsewhere a thread samples ``psutil`` RSS every 10 ms (may miss short peaks).
    The result is ``peak - RSS before``: memory already resident (the input vectors) is not
    counted; pages of a memory-mapped file being written count while they are resident.
    """

    def __enter__(self) -> PeakRSS:
        self._process = psutil.Process()
        self.before = self._process.memory_info().rss
        self.peak = self.before
        self._kernel = False
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._kernel = proc_status("VmHWM") is not None
        except OSError:
            pass
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not self._kernel:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        rss = self._process.memory_info().rss
        hwm = proc_status("VmHWM") if self._kernel else None
        self.peak = max(self.peak, rss, hwm or 0)
        self.method = "VmHWM after clear_refs" if self._kernel else "psutil RSS sampled every 10 ms"

    @property
    def added(self) -> int:
        """Peak RSS minus RSS before the block, in bytes."""
        return self.peak - self.before
