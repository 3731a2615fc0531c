"""The "Your photos" page through AppTest: roots confinement, indexing in the background with
its progress, the new index on the Search page, and the near-duplicates view."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_lab.app import paths as app_paths
from search_lab.app import photos as app_photos
from search_lab.app import text as app_text
from search_lab.core import ConfigError
from search_lab.data.planted import edited
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.retrieval import SearchEngine

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
PAGE = "search_lab/app/pages/photos_page.py"
ORIGINAL = "100000.jpg"


@pytest.fixture
def photos(tmp_path: Path, holidays_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A photo root holding an album: one photo, its JPEG-70 copy in a sub-folder, and three
    unrelated photos; the app's roots are that root alone."""
    root = tmp_path / "photos"
    album = root / "album"
    (album / "edits").mkdir(parents=True)
    for name in (ORIGINAL, "100100.jpg", "100200.jpg", "100300.jpg"):
        shutil.copyfile(holidays_dir / name, album / name)
    (album / "edits" / "copy70.jpg").write_bytes(edited(holidays_dir / ORIGINAL, "jpeg70"))
    (tmp_path / "outside").mkdir()
    monkeypatch.setenv(app_photos.ROOTS_ENV, str(root))
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(tmp_path / "indexes"))
    monkeypatch.setenv(OUTPUTS_ENV, str(tmp_path / "outputs"))
    monkeypatch.setenv("SEARCH_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOLIDAYS_DIR", str(holidays_dir))
    return root


def test_confine_refuses_paths_outside_the_roots(photos: Path, tmp_path: Path) -> None:
    roots = app_photos.allowed_roots()
    assert roots == [photos.resolve()]
    assert app_photos.confine(str(photos / "album"), roots) == (photos / "album").resolve()
    assert app_photos.confine(f"{photos}/album/../album/edits", roots) == photos / "album/edits"
    (photos / "escape").symlink_to(tmp_path / "outside")
    for bad in (str(tmp_path / "outside"), f"{photos}/../outside", str(photos / "escape"), "/"):
        with pytest.raises(ConfigError, match=r"is outside the folders this app may read \(") as e:
            app_photos.confine(bad, roots)
        assert "\n" not in str(e.value) and "conf/app.yaml" in str(e.value)
    with pytest.raises(ConfigError, match="is not a folder"):
        app_photos.confine(str(photos / "album" / ORIGINAL), roots)
    with pytest.raises(ConfigError, match="type the path"):
        app_photos.confine("  ", roots)


def test_roots_default_to_the_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(app_photos.ROOTS_ENV, raising=False)
    assert app_photos.allowed_roots() == [(ROOT / "data").resolve()]


def _page(timeout: float = 120) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=timeout).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def test_a_folder_outside_the_roots_is_refused_in_one_line(photos: Path, tmp_path: Path) -> None:
    at = _page()
    at.text_input(key="photos_folder").input(str(tmp_path / "outside"))
    at.button(key="photos_index").click().run()
    [error] = at.error
    assert "is outside the folders this app may read" in error.value
    assert not app_photos.jobs() or all(j.folder != tmp_path / "outside" for j in app_photos.jobs())


def test_index_a_folder_then_search_it_and_see_its_duplicates(photos: Path) -> None:
    at = _page()
    at.text_input(key="photos_folder").input(str(photos / "album"))
    assert at.radio(key="photos_recipe").value == "recommended"  # the CNN is installed
    assert len(at.radio(key="photos_recipe").options) == 3
    at.radio(key="photos_recipe").set_value("hsv")
    at.button(key="photos_index").click().run()
    assert not at.exception
    job = next(j for j in app_photos.jobs() if j.folder == (photos / "album").resolve())
    _wait(job)
    assert job.state == "done", job.message
    assert job.done == job.total == 5 and job.rate() > 0
    at = _page()  # the page left and opened again (a new session): the job is still shown
    [success] = [s.value for s in at.success if "5 images indexed" in s.value]
    assert "images/s" in success and job.index_dir.name.replace("-", "\\-") in success
    done = "added 5, changed 0, removed 0, unchanged 0; extracted 5 images"
    assert app_text.plain(done) in success
    # the duplicates view: the photo and its JPEG-70 copy, at the calibrated default
    assert at.selectbox(key="dup_index").value == job.index_dir.name
    slider = at.slider(key=f"dup_threshold_{job.index_dir.name}")
    assert slider.value == pytest.approx(app_photos_default())
    captions = [c.value for c in at.caption]
    assert any(c.startswith("1 group of 2 images from 1 pair") for c in captions), captions
    slider.set_value(0.0).run()
    assert any("No near-duplicates at this threshold" in i.value for i in at.info)
    # the Search page lists the new index among the others
    at.switch_page("search_lab/app/pages/search_page.py").run()
    assert job.index_dir.name in at.selectbox(key="search_index").options
    at.selectbox(key="search_index").set_value(job.index_dir.name).run()
    assert not at.exception and not at.error
    assert app_photos.NO_GROUND_TRUTH in [c.value for c in at.caption]
    assert at.radio(key="search_source").options == ["Photo from the collection", "Upload an image"]
    assert at.selectbox(key="search_photo").value == ORIGINAL  # names: relative to the album
    assert _captions_of_hits(at)[0].startswith(f"#1 {ORIGINAL} · d=0.0000")
    at.switch_page("search_lab/app/pages/dataset_page.py").run()
    source = next(s for s in at.selectbox(key="dataset_source").options if "album" in s)
    at.selectbox(key="dataset_source").set_value(source).run()
    assert not at.exception
    [info] = [i.value for i in at.info if "5 images" in i.value]
    assert app_photos.NO_GROUND_TRUTH in info


def _captions_of_hits(at: AppTest) -> list[str]:
    """Captions of the result thumbnails, their Markdown escapes removed."""
    captions = [re.sub(r"\\(.)", r"\1", c) for image in at.image for c in image.captions]
    return [c for c in captions if c.startswith("#")]


def test_indexing_again_extracts_only_the_new_photo(photos: Path, holidays_dir: Path) -> None:
    album = (photos / "album").resolve()
    first = app_photos.start(album, "hsv")
    _wait(first)
    shutil.copyfile(holidays_dir / "100400.jpg", album / "new.jpg")
    again = app_photos.start(album, "hsv")
    assert again is not first and again.index_dir == first.index_dir
    _wait(again)
    assert again.state == "done", again.message
    assert "added 1, changed 0, removed 0, unchanged 5; extracted 1 images" in again.message


def test_the_recommended_recipe_is_indexed_and_its_duplicates_judged_by_histogram(
    photos: Path,
) -> None:
    """The page's default recipe: CNN, colour and re-ranking (its local features computed in
    the job); its near-duplicates come from the photos' colour histograms (a chain fitted on
    five photos has no threshold of its own)."""
    job = app_photos.start((photos / "album").resolve(), "recommended")
    _wait(job, 300)
    assert job.state == "done", job.message
    assert job.index_dir.name.endswith("-recommended-cosine-exact")
    config = SearchEngine.load(job.index_dir).config
    assert config["rerank"]["name"] == "sv" and config["post"]["expand"] == 10
    assert "local features (sift) of 5 images for rerank=sv" in job.message  # in the job
    at = _page()
    at.selectbox(key="dup_index").set_value(job.index_dir.name).run()
    slider = at.slider(key=f"dup_threshold_{job.index_dir.name}")
    assert slider.value == pytest.approx(app_photos_default())
    assert slider.label == "Threshold (cosine distance of colour histograms)"
    captions = [c.value for c in at.caption]
    assert any(c.startswith("1 group of 2 images from 1 pair") for c in captions), captions
    slider.set_value(0.0).run()  # the copy is re-encoded: not at distance 0
    assert any("No near-duplicates at this threshold" in i.value for i in at.info)


def test_without_the_cnn_the_page_offers_the_colour_histogram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import search_lab.cli

    assert app_photos.recipes() == ["recommended", "hsv", "cnn"]
    monkeypatch.setattr(search_lab.cli, "cnn_missing", lambda: "torch is not installed")
    assert app_photos.recipes() == ["hsv"]


def _wait(job: app_photos.Job, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while job.running and time.monotonic() < deadline:
        time.sleep(0.2)


def app_photos_default() -> float:
    from search_lab.retrieval.duplicates import CALIBRATED

    return CALIBRATED["hsv"]


def _job_view(state: str, done: int, total: int, message: str = "") -> None:
    """Draw one job 10 s after its first image (AppTest runs this function as a script)."""
    import time
    from pathlib import Path

    from search_lab.app import photos as app_photos
    from search_lab.app.duplicate_view import show_job

    job = app_photos.Job(Path("/photos/a*b"), "hsv", Path("/indexes/photos-a_b-0-hsv"))
    job.state, job.done, job.total, job.message = state, done, total, message
    job.first = (time.monotonic() - 10.0, 0)
    show_job(job)


def test_a_running_job_shows_its_progress_and_images_per_second() -> None:
    at = AppTest.from_function(_job_view, args=("extracting", 50, 200)).run()
    [bar] = at.get("progress")
    assert bar.proto.value == 25  # per cent
    expected = "/photos/a*b: 50/200 images extracted, 5.0 images/s"  # 50 images in 10 s
    assert bar.proto.text == app_text.plain(expected)
    at = AppTest.from_function(_job_view, args=("starting", 0, 0)).run()
    assert "reading the folder" in at.get("progress")[0].proto.text
    at = AppTest.from_function(_job_view, args=("local", 200, 200)).run()
    assert app_text.plain("local features for re-ranking") in at.get("progress")[0].proto.text
    at = AppTest.from_function(_job_view, args=("failed", 3, 9, "disk full")).run()
    assert at.error[0].value.endswith(": disk full")
