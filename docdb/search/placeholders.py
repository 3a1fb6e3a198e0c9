"""Tiny blurred stand-ins for page thumbnails, inlined in the results page as data URLs.

A result card shows one at once (a few hundred bytes, no request), then the sharper thumbnail
fades in over it when the browser lazily loads it.
"""

import base64
import functools
import io

from PIL import Image

from docdb.documents.files import file_read

PLACEHOLDER_WIDTH = 16


def placeholder_data_url(name: str, version: str) -> str:
    """A data URL of the stored image `name` shrunk to 16 px wide; "" when it cannot be read.

    Cached by `version` (when the page was indexed), not by the file's modification time,
    which in a bucket would cost a request per result card; a re-rendered page is indexed
    again, so it gets a new placeholder."""
    try:
        return _placeholder(name, version)
    except (OSError, Image.UnidentifiedImageError):
        return ""  # not cached: the thumbnail may be there next time


@functools.lru_cache(maxsize=4096)
def _placeholder(name: str, _version: str) -> str:
    with Image.open(io.BytesIO(file_read(name))) as image:
        image.draft("RGB", (PLACEHOLDER_WIDTH * 4, PLACEHOLDER_WIDTH * 8))
        small = image.convert("RGB")
        small.thumbnail((PLACEHOLDER_WIDTH, PLACEHOLDER_WIDTH * 4))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=50)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
