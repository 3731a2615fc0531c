"""One upload's memory stays under 100 MB whatever its pixel count (within the upload limits).

Each measurement runs in a fresh Python: load an hsv engine, warm it up with a small query,
then hand a 7000x7000 PNG's bytes to the app's query path (the thumbnail of the query and
``search_lab.app.queries.search``) and report the growth of the peak resident set size.
``python tests/app/test_upload_memory.py`` prints the figures for every case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SIDE = 7000
LIMIT_MB = 100

MEASURE = """
import ctypes, json, sys
from pathlib import Path
from search_lab.app import queries as app_queries, uploads as app_uploads
from search_lab.retrieval.engine import SearchEngine

def peak_kb():
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

engine = SearchEngine.load(sys.argv[1])
small = open(sys.argv[3], "rb").read()
app_queries.search(engine, small, 10)  # imports and first-call costs
app_uploads.thumbnail_jpeg(small)
data = open(sys.argv[2], "rb").read()
ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory back to the system: new use shows
Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
before = peak_kb()
error = None
try:
    app_uploads.thumbnail_jpeg(data)
    hits = app_queries.search(engine, data, 10).hits
except Exception as err:  # the measured outcome, reported to the parent
    error = f"{type(err).__name__}: {err}"
print(json.dumps({"growth_mb": (peak_kb() - before) / 1024, "error": error}))
"""


def big_png(path: Path, mode: str, side: int = SIDE) -> Path:
    """A ``side`` x ``side`` PNG of ``mode`` with smooth content (compresses to a few hundred KB).

    Built from a small gradient resized up, so making it needs little memory itself.
    """
    ramp = np.linspace(0, 255, 256).astype(np.uint8)
    red, green = np.meshgrid(ramp, ramp)
    tile = np.stack([red, green, (red // 2 + green // 2)], axis=-1)
    img = Image.fromarray(tile, "RGB").resize((side, side), Image.Resampling.NEAREST)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, optimize=False)
    return path


def measure(index: Path, image: Path, small: Path) -> dict:
    """Peak RSS growth (MB) of the query path on ``image``, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(index), str(image), str(small)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


# (mode, side, accepted): 7000x7000 in each mode, and the largest RGB PNG an upload may be.
CASES = [
    ("RGB", SIDE, False),
    ("RGBA", SIDE, False),
    ("P", SIDE, True),
    ("L", SIDE, True),
    ("RGB", 4096, True),
]


@pytest.fixture(scope="module")
def hsv_index(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Path:
    from search_lab.app import indexes as app_indexes
    from search_lab.retrieval import build_engine

    base = tmp_path_factory.mktemp("upload")
    cfg = app_indexes.default_build_config(
        base, [f"dataset.root={holidays_dir}", f"cache_dir={base / 'cache'}", "workers=1"]
    )
    return build_engine(cfg).save(base / "hsv")


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "side", "accepted"), CASES)
def test_big_png_upload_stays_under_100_mb(
    hsv_index: Path, holidays_dir: Path, tmp_path: Path, mode: str, side: int, accepted: bool
) -> None:
    png = big_png(tmp_path / "big.png", mode, side)
    result = measure(hsv_index, png, holidays_dir / "100000.jpg")
    if accepted:
        assert result["error"] is None, result["error"]
    else:
        assert "allowed for an upload; save it as JPEG or shrink it" in result["error"]
    assert result["growth_mb"] < LIMIT_MB, result


def main() -> None:
    """Print the peak RSS growth of a 7000x7000 PNG upload per colour mode."""
    import tempfile

    from search_lab.app import indexes as app_indexes
    from search_lab.retrieval import build_engine

    holidays = Path(os.environ["HOLIDAYS_DIR"])
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cfg = app_indexes.default_build_config(
            base, [f"dataset.root={holidays}", "workers=1", "cache_dir=null"]
        )
        index = build_engine(cfg).save(base / "hsv")
        for mode, side, _ in CASES:
            png = big_png(base / f"big-{mode}-{side}.png", mode, side)
            result = measure(index, png, holidays / "100000.jpg")
            kb = png.stat().st_size / 1024
            print(
                f"{side}x{side} {mode} PNG ({kb:.0f} KB): peak RSS growth "
                f"{result['growth_mb']:.0f} MB, error: {result['error']}"
            )


if __name__ == "__main__":
    main()
