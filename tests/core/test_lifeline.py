"""Kill -9 at the dangerous moment: no worker survives its run, and the next run cleans up.

Each test starts the real code in a subprocess, SIGKILLs it while its workers run or while a
temporary file or folder is half-done, then checks within a few seconds that nothing it
started is still alive or writing, and that the next run removes what it left behind (but
never a temporary file that a live process is still writing).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from search_lab.core import owner_tag, remove_stale
from search_lab.core.lifeline import is_stale
from search_lab.retrieval import FeatureCache

ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN_S = 5.0


def _start(code: str, **env: str) -> subprocess.Popen:
    """Run ``code`` in a fresh Python with the project importable."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (zombies count as dead)."""
    running = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
        except psutil.NoSuchProcess:
            pass
    return running


def _kill_and_check_children(proc: subprocess.Popen, min_children: int) -> None:
    """SIGKILL ``proc`` once it has ``min_children`` workers; they must all be gone soon after."""
    parent = psutil.Process(proc.pid)
    _wait_for(
        lambda: len(parent.children()) >= min_children or proc.poll() is not None,
        60,
        f"{min_children} worker processes",
    )
    children = parent.children(recursive=True)
    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + GONE_WITHIN_S
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = _alive(children)
    for leftover in survivors:  # do not leak them into the rest of the test run
        leftover.kill()
    assert not survivors, f"{len(survivors)} workers outlived their killed parent"


EXTRACT = """
import os
from pathlib import Path
from search_lab.retrieval.extract import extract_files
root = Path(os.environ["HOLIDAYS_DIR"])
names = sorted(p.name for p in root.iterdir()) * 4
extract_files(root, names, {"name": "lbp"}, workers=2, progress=False)
"""


def test_extraction_workers_die_with_a_killed_run(holidays_dir: Path) -> None:
    proc = _start(EXTRACT, HOLIDAYS_DIR=str(holidays_dir))
    _kill_and_check_children(proc, min_children=2)


@pytest.mark.slow
def test_killed_joblib_sweep_stops_writing(holidays_dir: Path, tmp_path: Path) -> None:
    """After kill -9 of a joblib sweep, its workers end and no further metrics.json appears."""
    sweep = tmp_path / "sweep"
    bins = ",".join(f"[{h},4,2]" for h in range(4, 16))  # 12 jobs, each extracting anew
    command = [
        sys.executable, "-m", "search_lab.evaluate", "-m", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", "workers=1", "progress=false", f"feature.bins={bins}",
        f"dataset.root={holidays_dir}", f"cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finished() -> int:
        return len(list(sweep.rglob("metrics.json")))

    _wait_for(lambda: finished() >= 1 or proc.poll() is not None, 180, "the first finished job")
    _kill_and_check_children(proc, min_children=2)
    done = finished()
    assert done < 12, "the sweep finished before it could be killed; make its jobs slower"
    time.sleep(3)
    assert finished() == done, "jobs of a killed sweep went on writing metrics.json"


WRITE_AND_HANG = """
import os, sys, time
from pathlib import Path
os.replace = lambda *a: (print("written", flush=True), time.sleep(600))  # stop before the rename
from search_lab.core.files import atomic_write_bytes
atomic_write_bytes(Path(sys.argv[1]) / "k.npz", b"x" * 1000)
"""


def _hang_in_write(code: str, target: Path) -> subprocess.Popen:
    """Start a writer that stops just before its rename (the dangerous moment)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(target)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "written"
    return proc


def test_next_run_removes_a_killed_cache_write_but_not_a_live_one(tmp_path: Path) -> None:
    proc = _hang_in_write(WRITE_AND_HANG, tmp_path)
    (leftover,) = tmp_path.glob(".k.npz.*.tmp")
    FeatureCache(tmp_path)  # a run starting while the writer lives: its file must stay
    assert leftover.exists()
    proc.kill()
    proc.wait()
    FeatureCache(tmp_path)  # the next run after the kill
    assert not leftover.exists()
    assert list(tmp_path.iterdir()) == []


SAVE_AND_HANG = """
import os, sys, time
from search_lab.retrieval import engine
def hang(tmp, directory):
    print("written", flush=True)
    time.sleep(600)
engine.replace_dir = hang
from search_lab.retrieval import build_engine
from search_lab.app import indexes as app_indexes
from pathlib import Path
parent = Path(sys.argv[1])
overrides = [f"dataset.root={os.environ['HOLIDAYS_DIR']}", "workers=1"]
cfg = app_indexes.default_build_config(parent, overrides)
build_engine(cfg).save(parent / "idx")
"""


@pytest.mark.slow
def test_next_build_removes_a_killed_builds_temporary_folder(
    holidays_dir: Path, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVE_AND_HANG, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOLIDAYS_DIR": str(holidays_dir)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "written"
    (leftover,) = tmp_path.glob(".idx.*.tmp")
    assert not is_stale(leftover)  # its writer is alive
    proc.kill()
    proc.wait()
    assert is_stale(leftover)
    from search_lab.app import indexes as app_indexes
    from search_lab.retrieval import build_engine

    cfg = app_indexes.default_build_config(tmp_path, [f"dataset.root={holidays_dir}", "workers=1"])
    build_engine(cfg).save(tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_stale_rules(tmp_path: Path) -> None:
    """Dead writer: stale at once; live writer: kept until max age; untagged: by age only."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    dead_tag = owner_tag().replace(str(os.getpid()), dead.stdout.strip())
    files = {
        "dead": tmp_path / f".a.npz.{dead_tag}x1.tmp",
        "mine": tmp_path / f".a.npz.{owner_tag()}x2.tmp",
        "untagged": tmp_path / ".a.npz.x3.tmp",
        "old": tmp_path / ".a.npz.x4.tmp",
    }
    for path in files.values():
        path.write_bytes(b"")
    os.utime(files["old"], (time.time() - 7200, time.time() - 7200))
    removed = remove_stale(files.values(), max_age_s=3600)
    assert sorted(p.name for p in removed) == sorted([files["dead"].name, files["old"].name])


ORPHAN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", (
    "import time; from search_lab.core.lifeline import set_parent_death_signal as s;"
    "print(s(), flush=True); time.sleep(600)")])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_parent_death_signal_kills_an_orphan_at_once() -> None:
    """prctl(PR_SET_PDEATHSIG) alone (no watchdog): the child dies with its killed parent."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    proc = _start(ORPHAN)
    assert proc.stdout is not None
    child = psutil.Process(int(proc.stdout.readline()))
    assert proc.stdout.readline().strip() == "True"  # armed
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 1.0
    while _alive([child]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive([child]):
        child.kill()
        pytest.fail("the child outlived its parent by more than a second")
