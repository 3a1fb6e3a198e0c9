"""Tiny blurred stand-ins for page thumbnails, inlined in the results page as data URLs.

A result card shows one at once (a few hundred bytes, no request), then the sharper thumbnail
fades in over it when the browser lazily loads it.
"""

import base64
import functools
import io
from pathlib import Path

from PIL import Image

PLACEHOLDER_WIDTH = 16


def placeholder_data_url(path: Path) -> str:
    """A data URL of the image at `path` shrunk to 16 px wide; "" when it cannot be read."""
    try:
        modified = path.stat().st_mtime_ns
    except OSError:
        return ""
    return _placeholder(str(path), modified)


# Keyed by modification time too, so a re-rendered page gets a new placeholder.
@functools.lru_cache(maxsize=4096)
def _placeholder(path: str, _modified: int) -> str:
    try:
        with Image.open(path) as image:
            image.draft("RGB", (PLACEHOLDER_WIDTH * 4, PLACEHOLDER_WIDTH * 8))
            small = image.convert("RGB")
            small.thumbnail((PLACEHOLDER_WIDTH, PLACEHOLDER_WIDTH * 4))
    except OSError:
        return ""
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=50)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
