"""HSV histograms on images whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2hsv

from search_lab.core import ConfigError
from search_lab.features import create
from search_lab.features.color import bin_image, rgb_to_hsv


def solid(rgb: tuple[int, int, int], shape: tuple[int, int] = (20, 30)) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (*shape, 3)).copy()


def test_pure_red_fills_the_red_hue_bin() -> None:
    vec = create("hsv", bins=[8, 12, 3], sqrt=False).extract(solid((255, 0, 0)))
    hist = vec.reshape(8, 12, 3)
    assert hist[0, 11, 2] == pytest.approx(1.0)  # hue bin 0, full saturation, full value
    assert vec.sum() == pytest.approx(1.0)


def test_pure_blue_and_green_hue_bins() -> None:
    extractor = create("hsv", bins=[6, 1, 1], sqrt=False)
    assert np.argmax(extractor.extract(solid((0, 255, 0)))) == 2  # 120 degrees
    assert np.argmax(extractor.extract(solid((0, 0, 255)))) == 4  # 240 degrees


def test_lut_agrees_with_skimage_on_random_pixels() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bins = (8, 12, 3)
    hsv = rgb2hsv(image)
    h = np.floor(hsv[..., 0] * 8).astype(int) % 8
    s = np.minimum(np.floor(hsv[..., 1] * 12).astype(int), 11)
    v = np.minimum(np.floor(hsv[..., 2] * 3).astype(int), 2)
    expected = (h * 12 + s) * 3 + v
    agree = np.mean(bin_image(image, bins) == expected)
    # 7-bit quantisation moves only pixels next to a bin edge; uniform random colours put many
    # pixels near the 12 saturation edges, photos far fewer (mAP is checked end to end)
    assert agree > 0.95


def test_rgb_to_hsv_matches_skimage() -> None:
    rgb = np.random.default_rng(1).random((100, 3))
    np.testing.assert_allclose(rgb_to_hsv(rgb), rgb2hsv(rgb[None])[0], atol=1e-6)


def test_marginal_mode_and_sqrt() -> None:
    vec = create("hsv", bins=[4, 2, 2], mode="marginal", sqrt=True).extract(solid((255, 0, 0)))
    assert vec.shape == (8,)
    assert np.sum(vec**2) == pytest.approx(1.0)  # sqrt of a histogram summing to 1
    assert np.nonzero(vec)[0].tolist() == [0, 5, 7]


def test_spatial_layouts_see_where_colours_are() -> None:
    image = solid((0, 0, 255), (40, 40))
    image[:20, :20] = (255, 0, 0)  # top-left quadrant red
    vec = create("hsv", bins=[6, 1, 1], layout="grid2x2", sqrt=False).extract(image)
    regions = vec.reshape(4, 6)
    assert regions[0, 0] == pytest.approx(0.25) and regions[1, 4] == pytest.approx(0.25)
    flipped = create("hsv", bins=[6, 1, 1], layout="grid2x2", sqrt=False).extract(image[:, ::-1])
    assert not np.allclose(vec, flipped)
    centre = create("hsv", bins=[6, 1, 1], layout="center_surround").extract(image)
    assert centre.shape == (30,)


def test_vector_length_does_not_depend_on_image_size() -> None:
    extractor = create("hsv")
    assert (
        extractor.extract(solid((1, 2, 3), (10, 10))).shape
        == extractor.extract(solid((1, 2, 3), (99, 7))).shape
    )


@pytest.mark.parametrize(
    "params",
    [
        {"bins": [0, 12, 3]},
        {"bins": [8, 12]},
        {"mode": "both"},
        {"layout": "spiral"},
        {"max_side": 0},
        {"colour": 1},
    ],
)
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ConfigError, match="hsv"):
        create("hsv", **params)


def test_unknown_feature_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"choose one of: .*hsv"):
        create("colour")


def test_lookup_table_is_stored_once_and_read_back_verified(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from search_lab.features import color

    monkeypatch.setenv("SEARCH_LAB_CACHE", str(tmp_path))
    monkeypatch.setattr(color, "_TABLES", {})
    bins = (4, 2, 2)
    built = color.bin_lut(bins)
    path = color.table_path(bins)
    assert path.parent == tmp_path / "tables" and path.stat().st_size == 32 + 2 * (1 << 21)
    # white is hue 0, saturation 0, top value bin; pure red hue 0, top saturation and value
    assert built[(1 << 21) - 1] == 1 and built[127 << 14] == 3
    monkeypatch.setattr(color, "_TABLES", {})
    read = color.bin_lut(bins)
    assert not read.flags.writeable and np.array_equal(read, built)  # from the file, not built

    data = bytearray(path.read_bytes())
    data[1000] ^= 1  # one flipped bit in the entries
    path.write_bytes(bytes(data))
    monkeypatch.setattr(color, "_TABLES", {})
    with caplog.at_level("INFO", logger="search_lab.features.color"):
        assert np.array_equal(color.bin_lut(bins), built)
    assert any("is damaged: building it again" in r.getMessage() for r in caplog.records)
    assert path.read_bytes()[32:] == built.tobytes()  # stored again, whole

    path.write_bytes(path.read_bytes()[:-2])  # truncated
    monkeypatch.setattr(color, "_TABLES", {})
    assert np.array_equal(color.bin_lut(bins), built)
    assert path.stat().st_size == 32 + 2 * (1 << 21)


def test_lookup_table_is_built_when_the_cache_cannot_hold_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search_lab.features import color

    (tmp_path / "tables").write_text("a file where the folder should be")
    monkeypatch.setenv("SEARCH_LAB_CACHE", str(tmp_path))
    monkeypatch.setattr(color, "_TABLES", {})
    table = color.bin_lut((4, 2, 2))
    assert table.shape == (1 << 21,) and table[(1 << 21) - 1] == 1
    assert (tmp_path / "tables").read_text() == "a file where the folder should be"
