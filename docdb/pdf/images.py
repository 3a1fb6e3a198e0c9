"""Resize and store page images; files are written atomically so a reader never sees half."""

import io
import os
import tempfile
from pathlib import Path

from PIL import Image

# Page images are served by the web process, which may run as another user than the worker.
FILE_MODE = 0o644


def thumbnail_make(image: Image.Image, *, width: int) -> Image.Image:
    """A copy `width` pixels wide with the same aspect ratio; never enlarged."""
    if width < 1:
        raise ValueError(f"width must be positive, not {width}")
    if image.width <= width:
        return image.copy()
    height = max(1, round(image.height * width / image.width))
    # reducing_gap first shrinks by whole factors (fast), then finishes with Lanczos (sharp).
    return image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def image_jpeg_bytes(image: Image.Image, *, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def image_write_jpeg(image: Image.Image, path: Path, *, quality: int) -> int:
    """Write `image` as a JPEG at `path` atomically; returns the bytes written."""
    return file_write_atomic(path, image_jpeg_bytes(image, quality=quality))


def file_write_atomic(path: Path, data: bytes) -> int:
    """Replace `path` with `data` in one step (creating its folder); returns the bytes written.

    The temporary file sits in the same folder, because os.replace is only atomic within one
    file system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, FILE_MODE)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return len(data)
