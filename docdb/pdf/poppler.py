"""Read PDFs with poppler's command-line tools: each run in its own process, with a time limit
and a memory cap, so a hostile file can at worst fail its own job.

We call pdfinfo/pdftoppm/pdftotext directly rather than through pdf2image because
pdf2image.convert_from_path runs an extra pdfinfo without any time limit before every render and
hands back images without page numbers, so a page that fails inside a range cannot be named.
"""

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from docdb.pdf.capped import capped_run
from docdb.pdf.errors import PdfError
from docdb.pdf.pagefiles import (
    page_error,
    page_files,
    page_image_load,
    page_timeout,
    page_unfinished,
)

# Readers (Acrobat, poppler, PDFium) accept junk before the header when the header starts
# within the first kilobyte.
SNIFF_BYTES = 1024
_HEADER = b"%PDF-"
# pdftoppm's JPEG is decoded and usually encoded again by the caller: keep this first loss small.
RENDER_JPEG_QUALITY = 95
# A 10 000 px square page is already a 300 MB bitmap.
LONGEST_EDGE_MAX = 10_000

_PAGE_SIZE_LINE = re.compile(r"^Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+) pts", re.MULTILINE)
_PAGE_ROT_LINE = re.compile(r"^Page\s+(\d+) rot:\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PdfInfo:
    pages: int
    encrypted: bool  # encrypted but readable without a password
    title: str  # from the document's metadata; "" when it has none
    page_sizes: tuple[tuple[float, float], ...]  # (width, height) in points, as displayed


def pdf_sniff(head: bytes) -> bool:
    """Whether a file starting with `head` claims to be a PDF (by content, never by name):
    a header that starts within its first SNIFF_BYTES bytes (give SNIFF_HEAD of them)."""
    return _HEADER in head[: SNIFF_BYTES + len(_HEADER) - 1]


# How many bytes of a file `pdf_sniff` looks at.
SNIFF_HEAD = SNIFF_BYTES + len(_HEADER) - 1


def pdf_inspect(path: Path, *, max_pages: int, timeout: float) -> PdfInfo:
    """Page count, page sizes and title, or PdfError saying why this PDF cannot be processed."""
    path = pdf_path(path)
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


def pages_render_each(
    path: Path, *, first: int, last: int, longest_edge: int, max_pixels: int, timeout: float
) -> dict[int, Image.Image | PdfError]:
    """Pages `first`..`last` (inclusive, within the document): each one's RGB image, or the
    PdfError (with `page` set) saying why poppler could not render it.

    Pages are cut to their CropBox, as PDF viewers show them (and pdfinfo measures them). Each
    image's longest side is `longest_edge` px, however big the page, then shrunk further if
    it would exceed `max_pixels`. `timeout` is the range's: a page that hangs or crashes
    pdftoppm is given up, and the pages after it get another run with their share of it.
    PdfError for the whole file when pdftoppm cannot open it.
    """
    render_args_check(first, last, longest_edge, max_pixels)
    path = pdf_path(path)
    per_page = timeout / (last - first + 1)
    outcomes: dict[int, Image.Image | PdfError] = {}
    start = first
    while start <= last:
        stopped = _render_run(path, start, last, longest_edge, max_pixels, per_page, outcomes)
        start = last + 1 if stopped is None else stopped + 1
    return outcomes


def _render_run(
    path: Path,
    first: int,
    last: int,
    longest_edge: int,
    max_pixels: int,
    per_page: float,
    outcomes: dict[int, Image.Image | PdfError],
) -> int | None:
    """One pdftoppm run over `first`..`last` into `outcomes`; the page it stopped on, if any."""
    numbers = list(range(first, last + 1))
    with tempfile.TemporaryDirectory(prefix="docdb-render-") as folder:
        args = [
            "pdftoppm", "-cropbox", "-f", str(first), "-l", str(last),
            "-scale-to", str(longest_edge),
            "-jpeg", "-jpegopt", f"quality={RENDER_JPEG_QUALITY}",
            str(path), os.path.join(folder, "page"),
        ]  # fmt: skip
        result = capped_run(args, timeout=per_page * len(numbers))
        files = page_files(folder)
        if result.returncode > 0 and not files:
            if b"Wrong page range" in result.stderr:
                raise ValueError(f"pages {first}-{last} are not all in this document")
            raise _open_error(result.stderr)
        # A crash or a timeout stops pdftoppm on one page; the pages before it are whole.
        stopped = page_unfinished(folder, numbers) if result.returncode < 0 else None
        out_of_memory = b"Out of memory" in result.stderr
        for number in numbers:
            if number == stopped:
                outcomes[number] = page_timeout(number) if result.timed_out else page_error(number)
                break
            outcomes[number] = page_image_load(
                files.get(number), number, longest_edge, max_pixels, out_of_memory=out_of_memory
            )
        return stopped


def pages_text(path: Path, *, first: int, last: int, timeout: float) -> dict[int, str]:
    """The text layer of pages `first`..`last`: page number → text ("" for a page without)."""
    range_check(first, last)
    path = pdf_path(path)
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


def pdf_path(path: Path) -> Path:
    """The absolute path (so a name starting with "-" is never read as an option), after
    checking the file is not empty and looks like a PDF; poppler's own errors for those are
    ambiguous.
    """
    path = Path(path).absolute()
    with path.open("rb") as file:
        head = file.read(SNIFF_HEAD)
    if not head:
        raise PdfError("empty")
    if not pdf_sniff(head):
        raise PdfError("not_pdf")
    return path


def range_check(first: int, last: int) -> None:
    if not 1 <= first <= last:
        raise ValueError(f"page range {first}-{last} must satisfy 1 <= first <= last")


def render_args_check(first: int, last: int, longest_edge: int, max_pixels: int) -> None:
    range_check(first, last)
    if not 1 <= longest_edge <= LONGEST_EDGE_MAX:
        raise ValueError(f"longest_edge must be 1..{LONGEST_EDGE_MAX}, not {longest_edge}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, not {max_pixels}")


def _poppler_run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run a poppler tool; PdfError("timeout") once `timeout` seconds have passed."""
    result = capped_run(args, timeout=timeout)
    if result.timed_out:
        raise PdfError("timeout")
    return subprocess.CompletedProcess(args, result.returncode, result.stdout, result.stderr)


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
