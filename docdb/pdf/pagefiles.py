"""The page images an engine process leaves in a folder (`page-N.jpg`), read back safely.

Both engines write a page's file when the page is done, in page order, so after a crash or a
timeout the files say which pages are whole and where the engine stopped.
"""

import math
import os
import re
from pathlib import Path
from typing import cast

from PIL import Image

from docdb.pdf.errors import PdfError

_RENDERED_NAME = re.compile(r"^page-(\d+)\.jpg$")
PAGE_DAMAGED = "Page {} is damaged and could not be rendered."


def page_files(folder: str) -> dict[int, Path]:
    """Rendered files by page number (pdftoppm pads numbers to the width of the page count)."""
    files = {}
    for name in os.listdir(folder):
        match = _RENDERED_NAME.match(name)
        if match:
            files[int(match.group(1))] = Path(folder, name)
    return files


def page_unfinished(folder: str, numbers: list[int]) -> int | None:
    """The page the engine stopped on: the first without a whole JPEG (None if all are whole).

    Pages are written in order, so those before it are complete.
    """
    files = page_files(folder)
    for number in numbers:
        file = files.get(number)
        if file is None or not jpeg_complete(file):
            return number
    return None


def jpeg_complete(file: Path) -> bool:
    with file.open("rb") as jpeg:
        jpeg.seek(0, os.SEEK_END)
        if jpeg.tell() < 2:
            return False
        jpeg.seek(-2, os.SEEK_END)
        return jpeg.read() == b"\xff\xd9"  # the End Of Image marker


def page_image_load(
    file: Path | None, number: int, longest_edge: int, max_pixels: int, *, out_of_memory: bool
) -> Image.Image | PdfError:
    """The page's RGB image, within `max_pixels`, or the PdfError saying why there is none.

    A failed page may still leave a file: cut short when the engine crashed, or 1x1 px when
    poppler could not allocate the bitmap (it then prints "Out of memory" and carries on). A
    page rendered to `longest_edge` always has a side of that length, which tells them apart.
    """
    if file is None or not jpeg_complete(file):
        return page_error(number, out_of_memory=out_of_memory)
    try:
        with Image.open(file) as image:
            if abs(max(image.size) - longest_edge) > 1:
                return page_error(number, out_of_memory=out_of_memory)
            size = size_within(image.width, image.height, max_pixels)
            if size == image.size:
                return image.convert("RGB")
            # JPEG decodes straight to 1/2, 1/4 or 1/8 size: the full bitmap is never held.
            image.draft("RGB", size)
            return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    except Image.DecompressionBombError:
        return PdfError("page_too_large", f"Page {number} is too large to render.", page=number)
    except OSError:
        return PdfError("damaged", PAGE_DAMAGED.format(number), page=number)


def page_error(number: int, *, out_of_memory: bool = False) -> PdfError:
    if out_of_memory:
        reason = f"Page {number} needs too much memory to render."
        return PdfError("page_too_large", reason, page=number)
    return PdfError("damaged", PAGE_DAMAGED.format(number), page=number)


def page_timeout(number: int) -> PdfError:
    return PdfError("timeout", f"Page {number} took too long to render.", page=number)


def size_within(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, to at most `max_pixels` pixels."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    fitted = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    if fitted[0] * fitted[1] > max_pixels:  # a sliver of a page: its short side stays 1 px
        fitted = (min(fitted[0], max_pixels), 1) if fitted[1] == 1 else (1, max_pixels)
    return fitted


def image_blank(image: Image.Image) -> bool:
    """Whether nothing is drawn on the page: every pixel white (JPEG may leave a trace)."""
    low, _high = cast(tuple[int, int], image.convert("L").getextrema())  # one band: a pair
    return low >= 250
