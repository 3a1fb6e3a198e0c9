"""Read PDFs with poppler's command-line tools: each run in its own process, with a time limit
and a memory cap, so a hostile file can at worst fail its own job.

We call pdfinfo/pdftoppm/pdftotext directly rather than through pdf2image because
pdf2image.convert_from_path runs an extra pdfinfo without any time limit before every render and
hands back images without page numbers, so a page that fails inside a range cannot be named.
"""

import math
import os
import re
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from docdb.pdf.errors import PdfError

# Readers accept junk before the header, within the first kilobyte.
SNIFF_BYTES = 1024
# Address space for one poppler process. Rendering at 2048 px needs about 100 MB; what needs
# more is a hostile page (an enormous embedded image, a decompression bomb).
POPPLER_MEMORY_BYTES = 2 * 1024**3
# pdftoppm's JPEG is decoded and usually encoded again by the caller: keep this first loss small.
RENDER_JPEG_QUALITY = 95
# A 10 000 px square page is already a 300 MB bitmap.
LONGEST_EDGE_MAX = 10_000

_PAGE_SIZE_LINE = re.compile(r"^Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+) pts", re.MULTILINE)
_PAGE_ROT_LINE = re.compile(r"^Page\s+(\d+) rot:\s+(\d+)", re.MULTILINE)
_RENDERED_NAME = re.compile(r"^page-(\d+)\.jpg$")
_PAGE_DAMAGED = "Page {} is damaged and could not be rendered."


@dataclass(frozen=True, slots=True)
class PdfInfo:
    pages: int
    encrypted: bool  # encrypted but readable without a password
    title: str  # from the document's metadata; "" when it has none
    page_sizes: tuple[tuple[float, float], ...]  # (width, height) in points, as displayed


@dataclass(frozen=True, slots=True)
class RenderedPage:
    number: int  # 1-based
    image: Image.Image  # RGB


def pdf_sniff(head: bytes) -> bool:
    """Whether a file starting with `head` claims to be a PDF (by content, never by name)."""
    return b"%PDF-" in head[:SNIFF_BYTES]


def pdf_inspect(path: Path, *, max_pages: int, timeout: float) -> PdfInfo:
    """Page count, page sizes and title, or PdfError saying why this PDF cannot be processed."""
    path = _pdf_path(path)
    # -l bounds the per-page lines pdfinfo prints; "Pages:" still reports the full count.
    args = ["pdfinfo", "-enc", "UTF-8", "-f", "1", "-l", str(max_pages), str(path)]
    result = _poppler_run(args, timeout=timeout)
    if result.returncode != 0:
        if b"Wrong page range" in result.stderr:
            raise PdfError("empty", "This PDF has no pages.")
        raise _open_error(result.stderr)
    text = result.stdout.decode("utf-8", "replace")
    fields = _pdfinfo_fields(text)
    pages = int(fields.get("Pages", "0") or "0")
    if pages < 1:
        raise PdfError("empty", "This PDF has no pages.")
    if pages > max_pages:
        raise PdfError("too_many_pages", f"This PDF has {pages} pages; the limit is {max_pages}.")
    return PdfInfo(
        pages=pages,
        encrypted=fields.get("Encrypted", "no").startswith("yes"),
        title=fields.get("Title", "").replace("\x00", ""),
        page_sizes=_page_sizes(text),
    )


def pages_render(
    path: Path, *, first: int, last: int, longest_edge: int, max_pixels: int, timeout: float
) -> list[RenderedPage]:
    """Pages `first`..`last` (inclusive, within the document) as RGB images.

    Pages are cut to their CropBox, as PDF viewers show them (and pdfinfo measures them). Each
    image's longest side is `longest_edge` px, however big the page, then shrunk further if
    it would exceed `max_pixels`. `timeout` covers the whole range. A page that crashes or hangs
    the renderer raises PdfError with `page` set to it.
    """
    _range_check(first, last)
    if not 1 <= longest_edge <= LONGEST_EDGE_MAX:
        raise ValueError(f"longest_edge must be 1..{LONGEST_EDGE_MAX}, not {longest_edge}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, not {max_pixels}")
    path = _pdf_path(path)
    with tempfile.TemporaryDirectory(prefix="docdb-render-") as folder:
        args = [
            "pdftoppm", "-cropbox", "-f", str(first), "-l", str(last),
            "-scale-to", str(longest_edge),
            "-jpeg", "-jpegopt", f"quality={RENDER_JPEG_QUALITY}",
            str(path), os.path.join(folder, "page"),
        ]  # fmt: skip
        try:
            result = _poppler_run(args, timeout=timeout)
        except PdfError as exc:
            page = _page_unfinished(folder, first, last) or last
            raise PdfError("timeout", f"Page {page} took too long to render.", page=page) from exc
        files = _page_files(folder)
        if result.returncode > 0 and not files:
            if b"Wrong page range" in result.stderr:
                raise ValueError(f"pages {first}-{last} are not all in this document")
            raise _open_error(result.stderr)
        # Whether pdftoppm failed or not, each page's file is checked on its own.
        pages = []
        for number in range(first, last + 1):
            image = _page_image_load(
                files.get(number), number, longest_edge, max_pixels, stderr=result.stderr
            )
            pages.append(RenderedPage(number, image))
        return pages


def pages_text(path: Path, *, first: int, last: int, timeout: float) -> dict[int, str]:
    """The text layer of pages `first`..`last`: page number → text ("" for a page without)."""
    _range_check(first, last)
    path = _pdf_path(path)
    deadline = time.monotonic() + timeout
    texts = _pdftotext(path, first, last, timeout=timeout).split("\f")
    # pdftotext ends every page with a form feed; any other count means a page's own text
    # holds one, so ask page by page to keep each text with its page.
    if len(texts) != last - first + 2:
        texts = [
            _pdftotext(path, number, number, timeout=deadline - time.monotonic()).rstrip("\f")
            for number in range(first, last + 1)
        ]
    return {
        number: text_clean(text)
        for number, text in zip(range(first, last + 1), texts, strict=False)
    }


# C0 and C1 control characters but tab and newline.
_CONTROL_RUN = re.compile(r"[\x01-\x08\x0b-\x1f\x7f-\x9f]+")


def text_clean(text: str) -> str:
    """A page's text without control characters: a PDF whose fonts lack a Unicode map gives
    glyph numbers (\\x02 for a space, runs of \\x80-\\x9f), which would show as boxes in
    snippets and never match a search. Each run becomes one space; lines stay."""
    return _CONTROL_RUN.sub(" ", text.replace("\x00", "")).strip()


def _pdftotext(path: Path, first: int, last: int, *, timeout: float) -> str:
    args = ["pdftotext", "-cropbox", "-f", str(first), "-l", str(last), "-enc", "UTF-8"]
    args += [str(path), "-"]
    try:
        result = _poppler_run(args, timeout=timeout)
    except PdfError as exc:
        reason = f"Reading the text of pages {first}-{last} took too long."
        raise PdfError("timeout", reason) from exc
    if result.returncode != 0:
        if b"Wrong page range" in result.stderr:
            raise ValueError(f"pages {first}-{last} are not all in this document")
        raise _open_error(result.stderr)
    return result.stdout.decode("utf-8", "replace")


def _pdf_path(path: Path) -> Path:
    """The absolute path (so a name starting with "-" is never read as an option), after
    checking the file is not empty and looks like a PDF; poppler's own errors for those are
    ambiguous.
    """
    path = Path(path).absolute()
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
    if not head:
        raise PdfError("empty")
    if not pdf_sniff(head):
        raise PdfError("not_pdf")
    return path


def _range_check(first: int, last: int) -> None:
    if not 1 <= first <= last:
        raise ValueError(f"page range {first}-{last} must satisfy 1 <= first <= last")


def _poppler_run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run a poppler tool; PdfError("timeout") once `timeout` seconds have passed."""
    if timeout <= 0:
        raise PdfError("timeout")
    try:
        return subprocess.run(
            args,
            capture_output=True,
            timeout=timeout,
            check=False,
            preexec_fn=_memory_cap,  # one setrlimit call in the child, nothing that takes locks
        )
    except subprocess.TimeoutExpired as exc:
        raise PdfError("timeout") from exc


def _memory_cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (POPPLER_MEMORY_BYTES, POPPLER_MEMORY_BYTES))


def _open_error(stderr: bytes) -> PdfError:
    """The PdfError for a poppler tool that could not open the document at all."""
    if b"Incorrect password" in stderr:
        return PdfError("encrypted")
    if b"Document stream is empty" in stderr:
        return PdfError("empty")
    return PdfError("damaged")


def _pdfinfo_fields(text: str) -> dict[str, str]:
    # The last line for a key wins: a title containing "\nPages: 1" comes before the real one.
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("Page "):
            fields[key] = value.strip()
    return fields


def _page_sizes(text: str) -> tuple[tuple[float, float], ...]:
    # pdfinfo measures pages before their /Rotate: turn those shown sideways.
    rotations = {int(number): int(degrees) for number, degrees in _PAGE_ROT_LINE.findall(text)}
    sizes = []
    for number, width, height in _PAGE_SIZE_LINE.findall(text):
        sideways = rotations.get(int(number), 0) % 180 == 90
        sizes.append((float(height), float(width)) if sideways else (float(width), float(height)))
    return tuple(sizes)


def _page_files(folder: str) -> dict[int, Path]:
    """Rendered files by page number (pdftoppm pads numbers to the width of the page count)."""
    files = {}
    for name in os.listdir(folder):
        match = _RENDERED_NAME.match(name)
        if match:
            files[int(match.group(1))] = Path(folder, name)
    return files


def _page_unfinished(folder: str, first: int, last: int) -> int | None:
    """The page pdftoppm stopped on: the first without a whole JPEG (None if all are whole).

    Pages are written in order, so those before it are complete.
    """
    files = _page_files(folder)
    for number in range(first, last + 1):
        file = files.get(number)
        if file is None or not _jpeg_complete(file):
            return number
    return None


def _jpeg_complete(file: Path) -> bool:
    with file.open("rb") as jpeg:
        jpeg.seek(0, os.SEEK_END)
        if jpeg.tell() < 2:
            return False
        jpeg.seek(-2, os.SEEK_END)
        return jpeg.read() == b"\xff\xd9"  # the End Of Image marker


def _page_image_load(
    file: Path | None, number: int, longest_edge: int, max_pixels: int, *, stderr: bytes
) -> Image.Image:
    """The page's RGB image, within `max_pixels`; PdfError if poppler failed on this page.

    A failed page may still leave a file: cut short when pdftoppm crashed, or 1x1 px when the
    bitmap could not be allocated (it then prints "Out of memory" and carries on). A page
    rendered with -scale-to always has a side of exactly `longest_edge`, which tells them apart.
    """
    if file is None or not _jpeg_complete(file):
        raise _page_error(number, stderr)
    try:
        with Image.open(file) as image:
            if abs(max(image.size) - longest_edge) > 1:
                raise _page_error(number, stderr)
            size = _size_within(image.width, image.height, max_pixels)
            if size == image.size:
                return image.convert("RGB")
            # JPEG decodes straight to 1/2, 1/4 or 1/8 size: the full bitmap is never held.
            image.draft("RGB", size)
            return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    except Image.DecompressionBombError as exc:
        reason = f"Page {number} is too large to render."
        raise PdfError("page_too_large", reason, page=number) from exc
    except OSError as exc:
        raise PdfError("damaged", _PAGE_DAMAGED.format(number), page=number) from exc


def _page_error(number: int, stderr: bytes) -> PdfError:
    if b"Out of memory" in stderr:
        reason = f"Page {number} needs too much memory to render."
        return PdfError("page_too_large", reason, page=number)
    return PdfError("damaged", _PAGE_DAMAGED.format(number), page=number)


def _size_within(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, to at most `max_pixels` pixels."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    fitted = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    if fitted[0] * fitted[1] > max_pixels:  # a sliver of a page: its short side stays 1 px
        fitted = (min(fitted[0], max_pixels), 1) if fitted[1] == 1 else (1, max_pixels)
    return fitted
