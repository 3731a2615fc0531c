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
