"""Tests for search_lab.data.images.load_image, on images generated with Pillow inside each test."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFile, JpegImagePlugin

from search_lab.core import ConfigError, ImageLoadError
from search_lab.data import load_image
from search_lab.data.images import MAX_PIXELS

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _save(path: Path, img: Image.Image, **params: object) -> Path:
    """Save ``img`` to ``path`` (format from the suffix) and return the path."""
    img.save(path, **params)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 1-bit pixels; costs nothing to make."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def _halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue: an asymmetric pattern that shows any rotation."""
    img = Image.new("RGB", (width, height), BLUE)
    img.paste(RED, (0, 0, width // 2, height))
    return img


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return exif


@pytest.fixture(scope="module")
def big_camera_image() -> Image.Image:
    """A 3264x2448 camera-sized picture, made by upscaling a small random image (fast)."""
    small = np.random.default_rng(0).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((3264, 2448), Image.Resampling.BILINEAR)


# --- the output contract and the three kinds of source ---------------------------------------


def test_rgb_png_exact_pixels_and_contract(tmp_path: Path) -> None:
    pixels = np.array([[[1, 2, 3], [250, 128, 0]], [[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    path = _save(tmp_path / "tiny.png", Image.fromarray(pixels))

    out = load_image(path)

    assert out.dtype == np.uint8
    assert out.shape == (2, 2, 3)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("kind", ["str", "path", "bytes", "open_file", "bytesio"])
def test_sources_give_the_same_pixels(tmp_path: Path, kind: str) -> None:
    path = _save(tmp_path / "halves.png", _halves(6, 4))
    expected = np.asarray(_halves(6, 4))

    if kind == "str":
        out = load_image(str(path))
    elif kind == "path":
        out = load_image(path)
    elif kind == "bytes":
        out = load_image(path.read_bytes())
    elif kind == "open_file":
        with path.open("rb") as fp:
            out = load_image(fp)
            assert not fp.closed, "a caller's stream must be left open"
    else:
        out = load_image(io.BytesIO(path.read_bytes()))

    np.testing.assert_array_equal(out, expected)


# --- orientation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "top", "bottom"),
    [(6, RED, BLUE), (8, BLUE, RED)],  # 6: turn 90° clockwise (left -> top); 8: anticlockwise
)
def test_exif_orientation_is_applied(
    tmp_path: Path, orientation: int, top: tuple[int, ...], bottom: tuple[int, ...]
) -> None:
    path = _save(tmp_path / "camera.jpg", _halves(40, 20), quality=95, exif=_exif(orientation))

    out = load_image(path)

    assert out.shape == (40, 20, 3)  # landscape on disk, portrait once upright
    np.testing.assert_allclose(out[5, 10], top, atol=12)
    np.testing.assert_allclose(out[34, 10], bottom, atol=12)


# --- colour modes -------------------------------------------------------------------------------


def _grey16(kind: str, values: np.ndarray, path: Path) -> Path:
    """Save 16-bit (or int32) greyscale ``values`` in the file flavour named by ``kind``."""
    if kind == "I;16 png":
        img = Image.fromarray(values.astype(np.uint16))
    elif kind == "I;16B tiff":
        img = Image.fromarray(values.astype(">u2"))
    else:
        img = Image.fromarray(values.astype(np.int32))
    return _save(path.with_suffix(".png" if kind.endswith("png") else ".tif"), img)


@pytest.mark.parametrize("kind", ["I;16 png", "I;16B tiff", "I tiff"])
def test_16bit_greyscale_is_scaled_not_clipped(tmp_path: Path, kind: str) -> None:
    values = np.array([[0, 32768, 65535, 25700]])  # -> 0, ~128, 255, 100
    path = _grey16(kind, values, tmp_path / "grey16")
    with Image.open(path) as img:
        assert img.mode == kind.split()[0], "the test must really exercise this mode"

    out = load_image(path)

    assert out.dtype == np.uint8
    assert out.shape == (1, 4, 3)
    assert (out == out[..., :1]).all(), "grey must stay grey"
    assert out[0, 0, 0] == 0
    assert abs(int(out[0, 1, 0]) - 128) <= 1
    assert out[0, 2, 0] == 255
    assert out[0, 3, 0] == 100


def test_float_greyscale_in_unit_range_is_scaled(tmp_path: Path) -> None:
    values = np.array([[0.0, 0.5, 1.0, 0.25]], dtype=np.float32)
    path = _save(tmp_path / "float.tif", Image.fromarray(values))

    out = load_image(path)

    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 64])
    assert (out == out[..., :1]).all()


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [((255, 0, 0, 0), (0, 255, 255)), ((0, 255, 0, 0), (255, 0, 255)), ((0, 0, 0, 255), (0, 0, 0))],
)
def test_cmyk_jpeg_colours(tmp_path: Path, cmyk: tuple[int, ...], rgb: tuple[int, ...]) -> None:
    path = _save(tmp_path / "print.jpg", Image.new("CMYK", (16, 16), cmyk), quality=95)

    out = load_image(path)

    assert out.shape == (16, 16, 3)
    np.testing.assert_allclose(out[8, 8], rgb, atol=8)


def test_palette_with_transparency_goes_on_white(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 255, 0, 0])  # index 0 black (made transparent), 1 red
    img.putdata([0, 1])
    path = _save(tmp_path / "logo.png", img, transparency=0)

    out = load_image(path)

    np.testing.assert_array_equal(out[0], [WHITE, RED])


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    pixels = np.array([[[0, 0, 0, 0], [255, 0, 0, 255], [0, 0, 255, 128]]], dtype=np.uint8)
    path = _save(tmp_path / "cutout.png", Image.fromarray(pixels))

    out = load_image(path)

    np.testing.assert_array_equal(out[0, 0], WHITE)  # transparent black is white, not black
    np.testing.assert_array_equal(out[0, 1], RED)
    np.testing.assert_allclose(out[0, 2], (127, 127, 255), atol=1)


def test_la_is_composited_on_white(tmp_path: Path) -> None:
    pixels = np.array([[[0, 0], [0, 255], [100, 128]]], dtype=np.uint8)
    path = _save(tmp_path / "grey_alpha.png", Image.fromarray(pixels, "LA"))

    out = load_image(path)

    np.testing.assert_array_equal(out[0, 0], WHITE)
    np.testing.assert_array_equal(out[0, 1], (0, 0, 0))
    np.testing.assert_allclose(out[0, 2], (177, 177, 177), atol=1)  # 100*128/255 + 255*127/255


def test_one_bit_image(tmp_path: Path) -> None:
    img = Image.new("1", (2, 1))
    img.putdata([0, 1])
    path = _save(tmp_path / "bits.png", img)

    out = load_image(path)

    np.testing.assert_array_equal(out[0], [(0, 0, 0), WHITE])


# --- reduced-size decoding ----------------------------------------------------------------------


def test_max_side_drafts_big_jpeg_then_thumbnails(
    tmp_path: Path, big_camera_image: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path / "camera.jpg", big_camera_image, quality=85)
    drafted_sizes = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(
        self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None
    ) -> tuple[str, tuple[int, int, float, float]] | None:
        result = original_draft(self, mode, size)
        drafted_sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)

    out = load_image(path, max_side=512)

    assert out.shape == (384, 512, 3)
    assert drafted_sizes[0] == (816, 612), "JPEG should be decoded at 1/4 scale"


def test_max_side_with_exif_rotation(tmp_path: Path, big_camera_image: Image.Image) -> None:
    path = _save(tmp_path / "portrait.jpg", big_camera_image, quality=85, exif=_exif(6))

    out = load_image(path, max_side=400)

    assert out.shape == (400, 300, 3)


def test_max_side_thumbnails_non_jpeg(tmp_path: Path) -> None:
    path = _save(tmp_path / "wide.png", _halves(300, 100))

    out = load_image(path, max_side=60)

    assert out.shape == (20, 60, 3)
    np.testing.assert_array_equal(out[10, 5], RED)
    np.testing.assert_array_equal(out[10, 55], BLUE)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_small_image_is_not_upscaled(tmp_path: Path, suffix: str) -> None:
    path = _save(tmp_path / f"small{suffix}", _halves(50, 30))

    assert load_image(path, max_side=512).shape == (30, 50, 3)


# --- errors -------------------------------------------------------------------------------------


def _valid_jpeg() -> bytes:
    buffer = io.BytesIO()
    _halves(64, 48).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _valid_png() -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(1).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "PNG")
    return buffer.getvalue()


def _corrupt_png() -> bytes:
    data = bytearray(_valid_png())
    middle = len(data) // 2
    data[middle : middle + 32] = bytes(32)
    return bytes(data)


@pytest.mark.parametrize(
    ("filename", "content", "problem"),
    [
        ("missing.jpg", None, "no such file"),
        ("empty.jpg", b"", "empty"),
        ("notes.jpg", b"this is a text file, not a picture\n", "not a recognised image"),
        ("corrupt.png", _corrupt_png(), "corrupt"),
        ("half.jpg", _valid_jpeg()[: len(_valid_jpeg()) // 2], "truncated"),
        ("half.png", _valid_png()[: len(_valid_png()) // 2], "truncated"),
    ],
)
def test_bad_files_raise_image_load_error_naming_the_file(
    tmp_path: Path, filename: str, content: bytes | None, problem: str
) -> None:
    path = tmp_path / filename
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ImageLoadError) as info:
        load_image(path)

    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_too_many_pixels_for_a_small_bound(tmp_path: Path) -> None:
    path = _save(tmp_path / "hundred.png", _halves(100, 100))

    with pytest.raises(ImageLoadError, match="100x100") as info:
        load_image(path, max_pixels=5000)

    assert str(path) in str(info.value)
    assert load_image(path, max_pixels=10_000).shape == (100, 100, 3)


def test_huge_header_is_rejected_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8000x8000 = 64 Mpx: above MAX_PIXELS, yet below Pillow's own warning threshold.
    assert MAX_PIXELS < 8000 * 8000
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(8000, 8000))

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)

    with pytest.raises(ImageLoadError, match="8000x8000") as info:
        load_image(path)

    assert str(path) in str(info.value)


@pytest.mark.parametrize("side", [40, 50])  # 1600 px: Pillow warns; 2500 px: Pillow raises
def test_pillow_bomb_checks_become_image_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = _save(tmp_path / "bomb.png", Image.new("L", (side, side)))

    with pytest.raises(ImageLoadError, match="decompression bomb") as info:
        load_image(path)

    assert str(path) in str(info.value)


def test_bytes_and_streams_are_named_in_errors() -> None:
    with pytest.raises(ImageLoadError, match="<upload>"):
        load_image(b"definitely not an image")
    with pytest.raises(ImageLoadError, match=r"<upload>.*0 bytes"):
        load_image(b"")

    stream = io.BytesIO(b"not an image either")
    stream.name = "holiday.jpg"
    with pytest.raises(ImageLoadError, match=r"holiday\.jpg"):
        load_image(stream)


def test_errors_are_chained(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "missing.png")

    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_truncated_images_stay_errors_globally() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- argument checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{"max_side": 0}, {"max_side": -5}, {"max_side": 2.5}, {"max_pixels": 0}]
)
def test_bad_options_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_image(b"unused", **options)


def test_unsupported_source_type() -> None:
    with pytest.raises(TypeError, match="path, bytes or a binary file object"):
        load_image(12345)  # type: ignore[arg-type]


def _halves_png(width: int, height: int, mode: str = "L") -> bytes:
    """A PNG whose left half is black and right half white."""
    pixels = np.zeros((height, width), np.uint8)
    pixels[:, width // 2 :] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA"])
def test_large_image_is_shrunk_band_by_band(mode: str) -> None:
    out = load_image(_halves_png(3000, 1000, mode), max_side=100, max_decode_bytes=0)
    assert out.shape == (34, 100, 3)  # 3000x1000 box-reduced by 30: 100 x ceil(1000 / 30)
    assert out[:, :49].max() <= 1 and out[:, 51:].min() >= 254


def test_upload_over_the_decode_budget_is_refused_but_a_file_is_not(tmp_path: Path) -> None:
    data = _halves_png(3000, 1000, "RGB")  # 12 MB decoded (4 bytes a pixel)
    with pytest.raises(ImageLoadError, match=r"3000x1000 PNG RGB image needs 11 MB decoded"):
        load_image(data, max_side=100, max_decode_bytes=10 * 2**20)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    assert load_image(path, max_side=100).shape == (34, 100, 3)  # paths: no bound by default


def test_exif_orientation_applies_to_a_shrunk_image() -> None:
    pixels = np.zeros((1000, 2000, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif)
    assert load_image(buffer.getvalue(), max_side=100).shape == (100, 50, 3)
