"""Read a PDF with whichever engine can: poppler first (fast, the reference), PDFium for a
file poppler cannot open, for each page poppler cannot render, and for a page poppler renders
blank where PDFium finds something drawn. Both run in capped child processes.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from docdb.pdf import pdfium, poppler
from docdb.pdf.errors import PdfError
from docdb.pdf.pagefiles import image_blank

Engine = Literal["poppler", "pdfium"]
# Poppler's answers that no second engine changes: the file's bytes are not a PDF, or the
# page count is already known to be over the limit, or the file needs a password.
_FINAL = frozenset({"not_pdf", "too_many_pages", "encrypted"})


@dataclass(frozen=True, slots=True)
class RenderedPage:
    number: int  # 1-based
    image: Image.Image  # RGB
    engine: Engine = "poppler"


@dataclass(frozen=True, slots=True)
class PagesRendered:
    pages: list[RenderedPage]
    damaged: list[PdfError]  # one per page no engine could render, `page` set, in page order


def pdf_inspect(path: Path, *, max_pages: int, timeout: float) -> poppler.PdfInfo:
    """Page count, page sizes and title from the first engine that reads the file, or the
    PdfError (poppler's words) saying why neither can."""
    try:
        return poppler.pdf_inspect(path, max_pages=max_pages, timeout=timeout)
    except PdfError as exc:
        if exc.code in _FINAL:
            raise
        try:
            return pdfium.pdfium_inspect(path, max_pages=max_pages, timeout=timeout)
        except PdfError as second:
            raise (second if second.code == "too_many_pages" else exc) from None


def pages_render_each(
    path: Path, *, first: int, last: int, longest_edge: int, max_pixels: int, timeout: float
) -> PagesRendered:
    """Pages `first`..`last`, each from the engine that renders it (see
    `poppler.pages_render_each` for sizes and limits; `timeout` is the range's, per engine).
    PDFium's image counts only when something is drawn on it: a blank page from an engine
    that gives up on the page is no page. PdfError only when neither engine opens the file
    (ValueError when neither finds these pages in it)."""
    poppler.render_args_check(first, last, longest_edge, max_pixels)
    per_page = timeout / (last - first + 1)
    unopened: PdfError | ValueError | None = None
    try:
        first_pass = poppler.pages_render_each(
            path,
            first=first,
            last=last,
            longest_edge=longest_edge,
            max_pixels=max_pixels,
            timeout=timeout,
        )
    except (PdfError, ValueError) as exc:
        # ValueError: poppler counts fewer pages (a broken page tree PDFium reads).
        if isinstance(exc, PdfError) and exc.code in _FINAL:
            raise
        unopened = exc
        damaged = exc if isinstance(exc, PdfError) else PdfError("damaged")
        first_pass = {number: damaged for number in range(first, last + 1)}
    retry = [
        number
        for number, outcome in first_pass.items()
        if isinstance(outcome, PdfError) or image_blank(outcome)
    ]
    second_pass: dict[int, Image.Image | PdfError] = {}
    if retry:
        try:
            second_pass = pdfium.pdfium_render_each(
                path, retry, longest_edge=longest_edge, max_pixels=max_pixels, per_page=per_page
            )
        except PdfError:
            second_pass = {}
    rendered = _pick(first_pass, second_pass)
    if unopened is not None and not rendered.pages:
        raise unopened
    return rendered


def _pick(
    first_pass: dict[int, Image.Image | PdfError], second_pass: dict[int, Image.Image | PdfError]
) -> PagesRendered:
    pages, damaged = [], []
    for number in sorted(first_pass):
        outcome, second = first_pass[number], second_pass.get(number)
        if isinstance(second, Image.Image) and not image_blank(second):
            pages.append(RenderedPage(number, second, "pdfium"))
        elif isinstance(outcome, PdfError):
            # Poppler's reason: it names the page's trouble more precisely.
            damaged.append(outcome if outcome.page else _page_damaged(number, outcome))
        else:
            pages.append(RenderedPage(number, outcome, "poppler"))
    return PagesRendered(pages, damaged)


def _page_damaged(number: int, cause: PdfError) -> PdfError:
    if cause.code == "timeout":
        return PdfError("timeout", f"Page {number} took too long to render.", page=number)
    return PdfError("damaged", f"Page {number} is damaged and could not be rendered.", page=number)


def pages_render(
    path: Path, *, first: int, last: int, longest_edge: int, max_pixels: int, timeout: float
) -> list[RenderedPage]:
    """Like `pages_render_each`, for callers that need every page: PdfError (with `page` set)
    for the first page that no engine renders."""
    rendered = pages_render_each(
        path,
        first=first,
        last=last,
        longest_edge=longest_edge,
        max_pixels=max_pixels,
        timeout=timeout,
    )
    if rendered.damaged:
        raise rendered.damaged[0]
    return rendered.pages


def pages_text(
    path: Path, *, first: int, last: int, timeout: float, pdfium_pages: frozenset[int] = frozenset()
) -> dict[int, str]:
    """The text layer of pages `first`..`last`: page number → text ("" for a page without).

    Poppler reads it, PDFium where poppler cannot (or could not finish in `timeout`) and for
    `pdfium_pages`, the pages PDFium rendered. PdfError when neither engine opens the file.
    """
    poppler.range_check(first, last)
    failed: PdfError | ValueError | None = None
    try:
        texts = poppler.pages_text(path, first=first, last=last, timeout=timeout)
    except (PdfError, ValueError) as exc:
        if isinstance(exc, PdfError) and exc.code in _FINAL:
            raise
        texts, failed = {}, exc
    wanted = [n for n in range(first, last + 1) if n not in texts or n in pdfium_pages]
    if wanted:
        try:
            texts |= pdfium.pdfium_text(path, wanted, timeout=timeout)
        except PdfError:
            if failed is not None:
                raise failed from None
        # Poppler found no such pages: PDFium must find every one of them.
        missing = isinstance(failed, ValueError) and not texts.keys() >= set(wanted)
        if failed is not None and (missing or not texts):
            raise failed
    return {number: texts.get(number, "") for number in range(first, last + 1)}


def pdf_unlock(path: Path, dest: Path, *, password: str, timeout: float) -> int:
    """Write to `dest` the password-protected PDF at `path` without its encryption, opened
    with `password`; returns its page count. PdfError("encrypted") for a wrong password."""
    return pdfium.pdfium_unlock(path, dest, password=password, timeout=timeout)
