"""``python -m search_lab.search`` on a hand-crafted index imports only what that index needs.

A one-image hsv query spent over 99% of its 1.5 s importing (torch among it, Hydra, SciPy's
spatial module, scikit-image); the process must now answer without any of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search_lab.retrieval import build_engine

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "hydra", "omegaconf", "scipy.spatial", "skimage", "streamlit")
HEAVY += ("pandas", "matplotlib", "faiss", "hnswlib", "pynndescent", "numba", "ray")
NAMES = ("100000.jpg", "100001.jpg", "100100.jpg", "100101.jpg", "100200.jpg", "100201.jpg")

RUN = """
import json, runpy, sys
sys.argv = ["search_lab.search", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("search_lab.search", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Path:
    """An hsv / cosine / exact index of six holidays-small images (a Holidays-named folder)."""
    from tests.conftest import compose_config

    base = tmp_path_factory.mktemp("fast")
    images = base / "images"
    images.mkdir()
    for name in NAMES:
        shutil.copy(holidays_dir / name, images / name)
    cfg = compose_config(
        [f"dataset.root={images}", f"cache_dir={base / 'cache'}", "progress=false", "workers=1"]
    )
    return build_engine(cfg).save(base / "index")


def test_hsv_search_process_imports_no_torch(small_index: Path) -> None:
    """A whole search process (as a user runs it) answers without torch, Hydra or SciPy."""
    query = Path(json.loads((small_index / "manifest.json").read_text())["root"]) / NAMES[0]
    code = f"HEAVY = {HEAVY!r}\n{RUN}"
    done = subprocess.run(
        [sys.executable, "-c", code, "--index", str(small_index), str(query), "--k", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    record = json.loads(done.stderr.strip().splitlines()[-1])
    assert record["code"] == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[1].split() == ["1", "0.000000", NAMES[0]]
    assert record["heavy"] == []


def test_first_images_binned_colour_by_colour_equal_the_table(monkeypatch) -> None:
    """The direct path a one-image query takes gives exactly the table's bins."""
    import numpy as np

    from search_lab.features import color

    monkeypatch.setattr(color, "_TABLES", {})
    monkeypatch.setattr(color, "_DIRECT", {})
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    bins = (8, 12, 3)
    direct = color.bin_image(image, bins)
    assert bins not in color._TABLES  # answered without building the 2**21-entry table
    q = (image >> 1).astype(np.uint32)
    table = color.bin_lut(bins)[(q[..., 0] << 14) | (q[..., 1] << 7) | q[..., 2]]
    assert direct.dtype == np.uint16 and np.array_equal(direct, table)
    assert color.bin_lut(bins)[0] == 0 and color.bin_lut(bins)[(1 << 21) - 1] == 2  # black, white
