"""Query images in the app: accepted uploads and the thumbnails shown."""

from __future__ import annotations

import io

from PIL import Image

from search_lab.data import ImageSource, load_image

THUMB_SIDE = 256
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp")
MAX_UPLOAD_MB = 20


def thumbnail_jpeg(source: ImageSource, max_side: int = THUMB_SIDE, quality: int = 85) -> bytes:
    """A small JPEG of an image (longer side at most ``max_side``), through the project loader."""
    pixels = load_image(source, max_side=max_side)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
