"""LBP, HOG and edge-orientation features on images whose answer is known."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from skimage.feature import local_binary_pattern

import search_lab.features.shape  # registers hog and edges; its import of texture registers lbp
from search_lab.core import ConfigError
from search_lab.features import create
from search_lab.features.texture import grid_histogram, to_grey

CONF = Path(__file__).resolve().parents[2] / "conf" / "feature"
NAMES = ("lbp", "hog", "edges")


def solid(value: int, shape: tuple[int, int] = (40, 40)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def step(axis: int, shape: tuple[int, int] = (64, 64), dark_first: bool = True) -> np.ndarray:
    """Half black, half white: ``axis=1`` splits left/right (a vertical edge), 0 top/bottom."""
    image = np.zeros((*shape, 3), np.uint8)
    half = shape[axis] // 2
    region = (slice(None), slice(half, None)) if axis == 1 else (slice(half, None),)
    image[region] = 255
    return image if dark_first else 255 - image


def stripes(period: int = 6, size: int = 48) -> np.ndarray:
    """Vertical stripes, ``period // 2`` pixels dark then ``period // 2`` light."""
    columns = (np.arange(size) % period < period // 2).astype(np.uint8) * 200 + 20
    return np.broadcast_to(columns[None, :, None], (size, size, 3)).copy()


def noise(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- helpers


def test_to_grey_uses_bt601_weights() -> None:
    image = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]]], np.uint8)
    grey = to_grey(image)
    assert grey.dtype == np.float32 and grey.shape == (1, 4)
    np.testing.assert_allclose(grey[0], [76.245, 149.685, 29.07, 10.0], rtol=1e-5)


def test_to_grey_rejects_non_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="RGB"):
        to_grey(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        to_grey(np.zeros((4, 4, 3), np.float32))


def test_grid_histogram_by_hand() -> None:
    bins = np.array([[0, 1, 2, 2], [0, 0, 2, 2]])
    hist = grid_histogram(bins, n_bins=3, grid=2)  # regions: rows 0|1 x cols 0-1|2-3
    expected = np.array([[1, 1, 0], [0, 0, 2], [2, 0, 0], [0, 0, 2]]) / 2 / 4
    np.testing.assert_allclose(hist, expected.ravel())
    weighted = grid_histogram(bins, n_bins=3, grid=1, weights=np.zeros(bins.shape))
    np.testing.assert_allclose(weighted, [1 / 3] * 3)  # no mass: uniform, not NaN


# --------------------------------------------------------------------------- lbp


@pytest.mark.parametrize("method", ["uniform", "ror", "nri_uniform", "default"])
@pytest.mark.parametrize(("points", "radius"), [(8, 1), (16, 2)])
def test_lbp_of_constant_image_is_one_code(method: str, points: int, radius: int) -> None:
    extractor = create("lbp", points=points, radius=radius, method=method, grid=2)
    regions = extractor.extract(solid(90)).reshape(4, -1)
    assert np.count_nonzero(regions, axis=1).tolist() == [1, 1, 1, 1]
    assert len(set(np.argmax(regions, axis=1).tolist())) == 1
    np.testing.assert_allclose(regions.max(axis=1), 0.25)


@pytest.mark.parametrize(
    ("params", "length"),
    [
        ({"method": "uniform"}, 10),
        ({"method": "ror"}, 36),
        ({"method": "nri_uniform"}, 59),
        ({"method": "default"}, 256),
        ({"method": "uniform", "points": 16, "radius": 2}, 18),
        ({"method": "nri_uniform", "points": 16, "radius": 2}, 243),
        ({"method": "uniform", "grid": 3}, 90),
        ({"method": "nri_uniform", "grid": 2}, 236),
        ({"method": "uniform", "points": [8, 16], "radius": [1, 2]}, 28),
        ({"method": "uniform", "points": 8, "radius": [1, 2, 3], "grid": 2}, 120),
    ],
)
def test_lbp_length(params: dict, length: int) -> None:
    params = {"grid": 1, **params}
    extractor = create("lbp", **params)
    vec = extractor.extract(noise((50, 70)))
    assert vec.shape == (length,) == (extractor.dim,)
    assert vec.sum() == pytest.approx(1.0)


def test_lbp_ror_bins_are_the_rotation_classes() -> None:
    grey = np.rint(to_grey(noise((60, 60)))).astype(np.uint8)
    codes = np.unique(local_binary_pattern(grey, 8, 1, "ror")[1:-1, 1:-1])
    vec = create("lbp", method="ror", grid=1).extract(noise((60, 60)))
    assert np.count_nonzero(vec) == len(codes)  # each occurring code has its own bin


@pytest.mark.parametrize("method", ["uniform", "ror", "nri_uniform"])
def test_lbp_rotation_invariance_of_stripes(method: str) -> None:
    extractor = create("lbp", method=method, grid=1)
    image = stripes()
    upright = extractor.extract(image)
    turned = extractor.extract(np.ascontiguousarray(np.rot90(image)))
    if method == "nri_uniform":
        assert np.abs(upright - turned).sum() > 0.5
    else:
        np.testing.assert_allclose(upright, turned, atol=1e-6)


# --------------------------------------------------------------------------- hog


def hog_orientations(vec: np.ndarray, orientations: int) -> np.ndarray:
    return vec.reshape(-1, orientations).sum(axis=0)


def test_hog_vertical_edge_peaks_at_horizontal_gradient_bin() -> None:
    extractor = create("hog", size=[64, 64], pixels_per_cell=[16, 16], cells_per_block=[2, 2])
    totals = hog_orientations(extractor.extract(step(axis=1)), 9)
    assert np.argmax(totals) == 0  # skimage: bin k covers [20k, 20k + 20) degrees
    assert totals[0] > 0.99 * totals.sum()


def test_hog_horizontal_edge_peaks_at_90_degrees() -> None:
    totals = hog_orientations(create("hog").extract(step(axis=0)), 9)
    assert np.argmax(totals) == 4  # [80, 100) degrees
    assert totals[4] > 0.99 * totals.sum()


def test_hog_constant_image_is_the_uniform_unit_vector() -> None:
    vec = create("hog").extract(solid(7))
    np.testing.assert_allclose(vec, 1 / np.sqrt(vec.size), rtol=1e-6)


# --------------------------------------------------------------------------- edges


@pytest.mark.parametrize(
    ("image", "signed", "expected"),
    [
        (step(axis=1), False, 0),  # horizontal gradient
        (step(axis=1, dark_first=False), False, 0),
        (step(axis=0), False, 4),  # 90 degrees
        (step(axis=0, dark_first=False), False, 4),
        (step(axis=1), True, 0),  # signed, 8 bins of 45 degrees: 0, 180, 90 (down), 270 (up)
        (step(axis=1, dark_first=False), True, 4),
        (step(axis=0), True, 2),
        (step(axis=0, dark_first=False), True, 6),
    ],
)
def test_edges_mass_lands_in_the_gradient_bin(
    image: np.ndarray, signed: bool, expected: int
) -> None:
    vec = create("edges", orientations=8, signed=signed, grid=1).extract(image)
    assert vec[expected] == pytest.approx(1.0)


def test_edges_constant_image_is_uniform_without_nan() -> None:
    vec = create("edges").extract(solid(200))
    np.testing.assert_allclose(vec, 1 / vec.size)


def test_edges_grid_sees_where_the_edge_is() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[4:28, 44:60] = 255  # a white square inside the top-right cell
    regions = create("edges", orientations=4, signed=False, grid=2).extract(image).reshape(4, 4)
    np.testing.assert_allclose(regions[[0, 2, 3]], 0.25 / 4)  # flat cells: uniform
    assert regions[1].sum() == pytest.approx(0.25)
    assert regions[1, 0] > 0.05 and regions[1, 2] > 0.05  # 0 and 90 degrees


# --------------------------------------------------------------------------- every extractor


@pytest.mark.parametrize("name", NAMES)
def test_output_contract(name: str) -> None:
    extractor = create(name)
    big = extractor.extract(noise((243, 325), seed=1))
    small = extractor.extract(noise((60, 100), seed=2))
    for vec in (big, small):
        assert vec.dtype == np.float32 and vec.ndim == 1
        assert np.isfinite(vec).all()
    assert big.shape == small.shape == (extractor.dim,)
    norm = np.linalg.norm(big) if name == "hog" else big.sum()
    assert norm == pytest.approx(1.0, rel=1e-5)
    assert isinstance(extractor.max_side, int) and extractor.max_side > 0


@pytest.mark.parametrize("name", NAMES)
def test_yaml_defaults_equal_constructor_defaults(name: str) -> None:
    params = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    assert params.pop("name") == name
    cls = type(create(name))
    signature = inspect.signature(cls.__init__).parameters.values()
    defaults = {
        p.name: list(p.default) if isinstance(p.default, tuple) else p.default
        for p in signature
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert params == defaults
    assert create(name, **params).dim == create(name).dim


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("lbp", {"points": 0}, r"points must be an integer .* got 0"),
        ("lbp", {"points": -8}, r"points .* got -8"),
        ("lbp", {"points": 8.5}, r"points .* got 8.5"),
        ("lbp", {"radius": 0}, r"radius must be a number > 0 .* got 0"),
        ("lbp", {"radius": [1, -2]}, r"radius .* got -2"),
        ("lbp", {"method": "var"}, r"method 'var'; choose one of: uniform, ror, nri_uniform"),
        ("lbp", {"method": "ror", "points": 24}, r"points must be an integer in \[1, 16\], got 24"),
        ("lbp", {"points": [8, 16], "radius": [1, 2, 3]}, r"same length"),
        ("lbp", {"grid": 0}, r"grid .* got 0"),
        ("lbp", {"max_side": 0}, r"max_side .* got 0"),
        ("hog", {"orientations": 0}, r"orientations must be an integer >= 1, got 0"),
        ("hog", {"size": [128]}, r"size must be a pair .* got \[128\]"),
        ("hog", {"pixels_per_cell": [0, 16]}, r"pixels_per_cell .* got \[0, 16\]"),
        ("hog", {"size": [64, 64]}, r"size \[64, 64\] is smaller than one block"),
        ("hog", {"block_norm": "L3"}, r"block_norm 'L3'; choose one of: L2-Hys"),
        ("edges", {"orientations": 0}, r"orientations .* got 0"),
        ("edges", {"threshold": 1.0}, r"threshold must be a number in \[0, 1\), got 1.0"),
        ("edges", {"signed": "yes"}, r"signed must be true or false, got 'yes'"),
        ("edges", {"grid": -1}, r"grid .* got -1"),
    ],
)
def test_bad_parameters_name_the_value_and_what_is_allowed(
    name: str, params: dict, match: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}: .*{match}"):
        create(name, **params)


def test_unknown_keyword_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lbp"):
        create("lbp", bins=8)


def test_shape_reuses_the_one_grey_helper() -> None:
    assert search_lab.features.shape.to_grey is to_grey
