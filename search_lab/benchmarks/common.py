"""What every benchmark shares: the machine it ran on, its load, the configuration, the CLI."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from search_lab.core import SearchLabError, write_report

REPO = Path(__file__).resolve().parents[2]


def load_1m() -> float | None:
    """One-minute load average, or None where the platform has none."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def load_avg() -> list[float] | None:
    """Load averages over 1, 5 and 15 minutes, or None where the platform has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def package_version(name: str) -> str | None:
    """Installed version of the distribution ``name``, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    return cpu


def machine(**extra: Any) -> dict[str, Any]:
    """CPU model, cores, RAM, Python, numpy and platform of this machine, plus ``extra`` fields.

    Each benchmark adds its own: the load at its start and the versions of the libraries it
    times, so a figure is never read without the machine and the load it was measured under.
    """
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **extra,
        "platform": platform.platform(),
    }


def extraction_machine() -> dict[str, Any]:
    """The machine as the extraction benchmarks record it: load at start, OpenMP, torch, Pillow."""
    return machine(
        load_avg_at_start=load_avg(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        torch=package_version("torch"),
        pillow=package_version("Pillow") or package_version("pillow"),
    )


def compose(overrides: Sequence[str]) -> dict[str, Any]:
    """Resolved plain-dict configuration from ``conf/`` (the entry layer's one composer).

    Imported here, not at module level: a benchmark that never composes (the synthetic ones)
    does not pay for Hydra.
    """
    from search_lab.cli import compose_config

    return compose_config(list(overrides))


def start_cli(module: str, argv: Sequence[str] | None) -> tuple[list[str], str]:
    """Log progress at INFO; the arguments (``sys.argv``'s when None) and the command they make.

    The command, ``python -m <module> <arguments>``, is recorded in the report.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    return argv, shlex.join(["python", "-m", module, *argv])


def exit_status(action: Callable[[], object]) -> int:
    """0 once ``action()`` has run; a :class:`SearchLabError` is one line ``error: ...`` and 2."""
    try:
        action()
    except SearchLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def measure_and_report(
    measure: Callable[[], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    json_path: Path,
    md_path: Path,
) -> int:
    """Measure, write the JSON and the Markdown ``render`` makes, print the table; exit status."""

    def act() -> None:
        result = measure()
        print(write_report(json_path, md_path, result, render(result)))

    return exit_status(act)
