"""The documented benchmark commands still start: each old module is a shim over benchmarks/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIMS = ("bench", "bench_ann", "bench_integrity", "bench_ray", "bench_scale")


@pytest.mark.parametrize("name", SHIMS)
def test_documented_command_starts(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"search_lab.{name}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m search_lab.{name} ")


def test_a_bad_value_is_one_line_and_status_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "search_lab.bench_scale", "--rows", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --rows, --dim, --shard-rows, --trees and --jobs must be positive"
    ]
