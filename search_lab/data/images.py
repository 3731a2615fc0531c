"""The one image loader of search_lab: any file, upload or stream in, upright 8-bit RGB array out.

Indexing, queries and the app all call :func:`load_image`, so every image goes through the same
orientation, colour and size handling, and every failure surfaces as one
:class:`~search_lab.core.errors.ImageLoadError` that names the file.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from search_lab.core import ImageLoadError, require_positive_int

__all__ = ["MAX_PIXELS", "UPLOAD_DECODE_BYTES", "load_image"]

logger = logging.getLogger(__name__)

MAX_PIXELS: int = 50_000_000
"""Default bound on width * height: far above any camera, low enough to stop decompression bombs."""

UPLOAD_DECODE_BYTES: int = 64 * 2**20
"""Bound on the decoded size of an upload (bytes or a stream): with the shrinking done band by
band, a query's memory stays under 100 MB. JPEGs are measured after reduced-size decoding."""

BAND_PIXELS = 2**20
"""Pixels converted and shrunk at a time: no full-size RGB copy of a large image is ever made."""

# Bytes per pixel of Pillow's decoded image by mode (RGB is stored with a padding byte).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}

UPLOAD_NAME = "<upload>"
"""How error messages name an image given as bytes or as a stream without a ``name``."""

_WHITE = (255, 255, 255, 255)

# What Pillow raises for unreadable, corrupt or truncated data (``UnidentifiedImageError`` and
# ``FileNotFoundError`` are ``OSError``s). ``DecompressionBombWarning`` is made an error below.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

ImageSource = str | os.PathLike[str] | bytes | BinaryIO


def load_image(
    source: ImageSource,
    *,
    max_side: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_decode_bytes: int | None = None,
) -> np.ndarray:
    """Load an image upright as 8-bit RGB, optionally shrunk so neither side exceeds ``max_side``.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        A path, the raw bytes of an upload, or an open binary stream (left open; its ``name``
        attribute, if any, is used in error messages).
    max_side : int, optional
        Bound on the longer side of the result. JPEGs are decoded at a reduced scale (Pillow's
        draft mode) and every image is then thumbnailed; smaller images are never upscaled.
    max_pixels : int, default MAX_PIXELS
        Images whose header claims more than this many pixels are rejected before any pixel is
        decoded. Pillow's own ``Image.MAX_IMAGE_PIXELS`` check applies as well.
    max_decode_bytes : int, optional
        Images whose decoded pixels (after reduced-size JPEG decoding) would take more memory
        are rejected before decoding. Default: ``UPLOAD_DECODE_BYTES`` for bytes and streams
        (uploads), no bound for paths; 0 disables it.

    Returns
    -------
    numpy.ndarray
        Shape (H, W, 3), dtype uint8, C-contiguous and read-only (copy it before editing in
        place). EXIF orientation is applied, transparency is composited onto white, and 16-bit
        or float greyscale is scaled to 0..255.

    Raises
    ------
    ImageLoadError
        If the file is missing, empty, not an image, corrupt, truncated or too large; the message
        names the file.
    ConfigError
        If ``max_side`` or ``max_pixels`` is not a positive integer.
    """
    require_positive_int("max_side", max_side, null=True)
    require_positive_int("max_pixels", max_pixels)
    name = _source_name(source)
    if max_decode_bytes is None:
        max_decode_bytes = 0 if isinstance(source, str | os.PathLike) else UPLOAD_DECODE_BYTES
    with _binary_stream(source, name) as fp:
        return _decode(fp, name, max_side, max_pixels, max_decode_bytes)


def _source_name(source: ImageSource) -> str:
    """Name the source for messages: the path, the stream's ``name``, or ``<upload>``."""
    if isinstance(source, str | os.PathLike):
        return os.fsdecode(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else UPLOAD_NAME


@contextmanager
def _binary_stream(source: ImageSource, name: str) -> Iterator[BinaryIO]:
    """Yield a seekable binary stream for any source, closing only what this module opened."""
    if isinstance(source, str | os.PathLike):
        try:
            fp = open(source, "rb")  # noqa: SIM115 - closed by the ``with`` just below
        except FileNotFoundError as exc:
            raise ImageLoadError(f"Cannot load image {name}: no such file") from exc
        except IsADirectoryError as exc:
            raise ImageLoadError(f"Cannot load image {name}: it is a directory") from exc
        except OSError as exc:
            raise ImageLoadError(f"Cannot load image {name}: {exc.strerror or exc}") from exc
        with fp:
            if os.fstat(fp.fileno()).st_size == 0:
                raise ImageLoadError(f"Cannot load image {name}: the file is empty (0 bytes)")
            yield fp
    elif isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise ImageLoadError(f"Cannot load image {name}: no data (0 bytes)")
        with io.BytesIO(source) as buffer:
            yield buffer
    elif hasattr(source, "read"):
        yield source
    else:
        raise TypeError(
            f"load_image takes a path, bytes or a binary file object, not {type(source).__name__}"
        )


def _decode(
    fp: BinaryIO, name: str, max_side: int | None, max_pixels: int, max_bytes: int
) -> np.ndarray:
    """Check the header size, decode (drafted if possible), shrink, convert and orient."""
    mode = "?"
    try:
        # Scoped, not global: Pillow's bomb *warning* becomes an error for this call only.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                mode = img.mode
                _check_pixels(img.size, name, max_pixels)
                if max_side is not None and max(img.size) > max_side:
                    target = _fit(img.size, max_side)
                    if img.draft("RGB", target) is not None:
                        logger.debug("%s: JPEG draft-decoded at %dx%d", name, *img.size)
                _check_decode_bytes(img, name, max_bytes)
                img.load()
                orientation = img.getexif().get(ExifTags.Base.Orientation)
                out = _orient(_shrink_in_bands(img, max_side), orientation)
                if max_side is not None:
                    out.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
                if out.mode != "RGB":
                    out = out.convert("RGB")
                return np.asarray(out)
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            f"Cannot load image {name}: not a recognised image format (corrupt, or not an image)"
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(
            f"Cannot load image {name}: too many pixels, refused as a possible decompression "
            f"bomb ({exc})"
        ) from exc
    except _UnsupportedModeError as exc:
        raise ImageLoadError(
            f"Cannot load image {name}: colour mode {mode} cannot be converted to RGB ({exc})"
        ) from exc
    except _DECODE_ERRORS as exc:
        raise ImageLoadError(
            f"Cannot load image {name}: cannot decode the image data, the file is probably "
            f"truncated or corrupt ({exc})"
        ) from exc


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int) -> None:
    """Refuse images larger than ``max_pixels`` from the header alone, before decoding."""
    width, height = size
    if width * height > max_pixels:
        raise ImageLoadError(
            f"Cannot load image {name}: {width}x{height} = {width * height:,} pixels exceeds "
            f"max_pixels={max_pixels:,}; shrink the image or raise max_pixels"
        )


def _check_decode_bytes(img: Image.Image, name: str, max_bytes: int) -> None:
    """Refuse an image whose decoded pixels would exceed ``max_bytes`` (0: no bound)."""
    width, height = img.size
    needed = width * height * _MODE_BYTES.get(img.mode, 4)
    if max_bytes and needed > max_bytes:
        raise ImageLoadError(
            f"Cannot load image {name}: {width}x{height} {img.format or ''} {img.mode} image "
            f"needs {needed / 2**20:.0f} MB decoded, more than the {max_bytes / 2**20:.0f} MB "
            "allowed for an upload; save it as JPEG or shrink it"
        )


def _shrink_in_bands(img: Image.Image, max_side: int | None) -> Image.Image:
    """``img`` as ``L`` or ``RGB``, box-reduced by the largest integer factor keeping it above
    ``max_side``, band by band: memory never holds a full-size converted copy."""
    factor = max(img.size) // max_side if max_side else 1
    if factor < 2:
        return _to_l_or_rgb(img)
    width, height = img.size
    rows = max(factor, BAND_PIXELS // width // factor * factor)
    bands = [
        _to_l_or_rgb(img.crop((0, top, width, min(height, top + rows)))).reduce(factor)
        for top in range(0, height, rows)
    ]
    out = Image.new(bands[0].mode, (bands[0].width, sum(band.height for band in bands)))
    top = 0
    for band in bands:
        out.paste(band, (0, top))
        top += band.height
    return out


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orient(img: Image.Image, orientation: int | None) -> Image.Image:
    """``img`` turned upright for an EXIF ``orientation`` tag (1 or None: as it is)."""
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return img if method is None else img.transpose(method)


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Size with the same aspect whose longer side is ``max_side`` (the draft target)."""
    width, height = size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class _UnsupportedModeError(ValueError):
    """Pillow has no conversion from this colour mode to RGB."""


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit ``L`` or ``RGB``, compositing transparency onto white.

    Greyscale stays ``L`` so a later thumbnail touches one channel instead of three.
    """
    mode = img.mode
    if mode in ("L", "RGB") and not img.has_transparency_data:
        return img
    if mode == "I" or mode.startswith("I;16"):
        return Image.fromarray(_scale_16bit(np.asarray(img)))
    if mode == "F":
        return Image.fromarray(_scale_float(np.asarray(img)))
    if mode == "1":
        return img.convert("L")
    try:
        if img.has_transparency_data:
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, _WHITE)
            return Image.alpha_composite(background, rgba).convert("RGB")
        return img.convert("RGB")
    except ValueError as exc:  # e.g. LAB: Pillow has no direct conversion
        raise _UnsupportedModeError(str(exc)) from exc


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Map integer greyscale 0..65535 to 0..255 with rounding (Pillow's convert would clip at 255).

    Mode ``I`` is read as 16-bit data too; values outside 0..65535 are clipped.
    """
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _scale_float(values: np.ndarray) -> np.ndarray:
    """Map float greyscale to 0..255: data within [0, 1] is scaled up, anything else clipped.

    NaN becomes 0; infinities clip to the ends of the range.
    """
    clean = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
    if clean.size and clean.min() >= 0.0 and clean.max() <= 1.0:
        clean = clean * 255.0
    return np.rint(np.clip(clean, 0.0, 255.0)).astype(np.uint8)


def shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """A loaded (H, W, 3) image shrunk as ``load_image`` would: no side above ``max_side``.

    Used when one decoded image serves extractors that need different sizes (``combo``).
    """
    if max_side is None or max(image.shape[:2]) <= max_side:
        return image
    img = Image.fromarray(np.ascontiguousarray(image))
    img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.asarray(img)
