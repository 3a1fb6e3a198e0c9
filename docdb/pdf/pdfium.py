"""Read PDFs with PDFium (pypdfium2), the engine of Chromium, for what poppler cannot open or
render. PDFium runs in a child process (pdfium_child.py) under the same time limit and memory
cap as poppler's tools; this side starts it and reads back its pages, text and answers.
"""

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from docdb.pdf.capped import Finished, capped_run
from docdb.pdf.errors import PDF_ERROR_CODES, PdfError
from docdb.pdf.pagefiles import page_error, page_files, page_image_load, page_timeout
from docdb.pdf.poppler import PdfInfo, pdf_path, text_clean

_CHILD = Path(__file__).with_name("pdfium_child.py")


def _child(args: list[str], *, timeout: float, stdin: bytes = b"") -> Finished:
    # -I: isolated, so the child sees neither the caller's environment nor its working folder.
    return capped_run([sys.executable, "-I", str(_CHILD), *args], timeout=timeout, stdin=stdin)


def _lines(result: Finished) -> list[dict[str, Any]]:
    """The child's answers, and PdfError when it could not open the file at all."""
    lines = []
    for raw in result.stdout.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            break  # cut short by a timeout
    if lines and "error" in lines[0] and "page" not in lines[0]:
        code = lines[0]["error"]
        raise PdfError(code if code in PDF_ERROR_CODES else "damaged")
    return lines


def pdfium_inspect(path: Path, *, max_pages: int, timeout: float) -> PdfInfo:
    """Page count, page sizes and title as PDFium reads them; PdfError if it cannot."""
    path = pdf_path(path)
    result = _child(["inspect", str(path), str(max_pages)], timeout=timeout)
    if result.timed_out:
        raise PdfError("timeout")
    lines = _lines(result)
    if result.returncode != 0 or not lines:
        raise PdfError("damaged")
    info = lines[0]
    pages = int(info["pages"])
    if pages < 1:
        raise PdfError("empty", "This PDF has no pages.")
    if pages > max_pages:
        raise PdfError("too_many_pages", f"This PDF has {pages} pages; the limit is {max_pages}.")
    return PdfInfo(
        pages=pages,
        encrypted=bool(info["encrypted"]),
        title=str(info["title"]).replace("\x00", ""),
        page_sizes=tuple((float(w), float(h)) for w, h in info["sizes"]),
    )


def pdfium_render_each(
    path: Path, numbers: list[int], *, longest_edge: int, max_pixels: int, per_page: float
) -> dict[int, Image.Image | PdfError]:
    """These pages rendered by PDFium as `poppler.pages_render_each` renders them: each one's
    image or why there is none; `per_page` seconds for each page, shared by the run."""
    path = pdf_path(path)
    outcomes: dict[int, Image.Image | PdfError] = {}
    pending = list(numbers)
    while pending:
        pending = _render_run(path, pending, longest_edge, max_pixels, per_page, outcomes)
    return outcomes


def _render_run(
    path: Path,
    numbers: list[int],
    longest_edge: int,
    max_pixels: int,
    per_page: float,
    outcomes: dict[int, Image.Image | PdfError],
) -> list[int]:
    """One child run over `numbers` into `outcomes`; the pages after the one it stopped on."""
    with tempfile.TemporaryDirectory(prefix="docdb-pdfium-") as folder:
        args = ["render", str(path), folder, str(longest_edge), *map(str, numbers)]
        result = _child(args, timeout=per_page * len(numbers))
        finished = {line["page"] for line in _lines(result) if "page" in line}
        files = page_files(folder)
        for index, number in enumerate(numbers):
            if number not in finished:  # it crashed or hung here
                outcomes[number] = page_timeout(number) if result.timed_out else page_error(number)
                return numbers[index + 1 :]
            outcomes[number] = page_image_load(
                files.get(number), number, longest_edge, max_pixels, out_of_memory=False
            )
    return []


def pdfium_text(path: Path, numbers: list[int], *, timeout: float) -> dict[int, str]:
    """The text PDFium reads on these pages, by number; a page it did not finish in time is
    left out. PdfError when it cannot open the file."""
    path = pdf_path(path)
    result = _child(["text", str(path), *map(str, numbers)], timeout=timeout)
    return {
        int(line["page"]): text_clean(str(line["text"]))
        for line in _lines(result)
        if "text" in line
    }


def pdfium_unlock(path: Path, dest: Path, *, password: str, timeout: float) -> int:
    """Write to `dest` the PDF at `path` opened with `password`, without its encryption;
    returns its page count. PdfError("encrypted") when the password does not open it."""
    path = pdf_path(path)
    result = _child(
        ["unlock", str(path), str(Path(dest).absolute())],
        timeout=timeout,
        stdin=password.replace("\n", "").encode() + b"\n",
    )
    if result.timed_out:
        raise PdfError("timeout")
    lines = _lines(result)
    if result.returncode != 0 or not lines:
        raise PdfError("damaged")
    return int(lines[0]["pages"])
