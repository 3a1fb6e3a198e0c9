"""The PDFium side of docdb.pdf.pdfium, run as its own process (`python -I pdfium_child.py`):
PDFium is a C++ library, so a hostile file could crash or exhaust the process that loads it.
The parent caps this process's memory and time exactly as it caps poppler's tools.

It imports nothing from docdb (isolated mode does not even see it) and speaks through its
arguments, stdin (a password, never an argument, which other users could read), files in a
folder, and JSON lines on stdout, one per page as soon as that page is done, so a parent that
stops it after a timeout keeps the pages it finished.

    inspect PATH MAX_PAGES            {"pages", "title", "sizes", "encrypted"}
    render PATH FOLDER EDGE N [N...]  page-N.jpg per page, longest side EDGE px
    text PATH N [N...]                {"page": N, "text": ...} per page
    unlock PATH DEST                  password on stdin; DEST gets the PDF without encryption

A file it cannot open gives {"error": code} (a docdb.pdf error code) and nothing else.
"""

import json
import sys
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

JPEG_QUALITY = 95
# PDFium's loading errors (fpdfview.h) as docdb.pdf's error codes.
_LOAD_ERRORS = {pdfium_c.FPDF_ERR_PASSWORD: "encrypted", pdfium_c.FPDF_ERR_SECURITY: "encrypted"}


def _say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def _open(path: str, password: str | None = None) -> pdfium.PdfDocument | None:
    try:
        return pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as exc:
        _say(error=_LOAD_ERRORS.get(exc.err_code or 0, "damaged"))
        return None


def _inspect(document: pdfium.PdfDocument, max_pages: int) -> None:
    pages = len(document)
    sizes = [list(document.get_page_size(index)) for index in range(min(pages, max_pages))]
    title = document.get_metadata_value("Title") or ""
    encrypted = pdfium_c.FPDF_GetSecurityHandlerRevision(document.raw) != -1
    _say(pages=pages, title=title, sizes=sizes, encrypted=encrypted)


def _render(document: pdfium.PdfDocument, folder: str, edge: int, numbers: list[int]) -> None:
    # Forms: filled fields are drawn as poppler draws them.
    document.init_forms()
    for number in numbers:
        page = document[number - 1]
        width, height = page.get_size()  # the CropBox, turned as the page is shown
        if min(width, height) <= 0:
            _say(page=number, error="damaged")
            continue
        bitmap = page.render(scale=edge / max(width, height), may_draw_forms=True)
        image = bitmap.to_pil().convert("RGB")
        # Written under a temporary name, then renamed: a file with the page's name is whole.
        temp = Path(folder, f".page-{number}.jpg")
        image.save(temp, format="JPEG", quality=JPEG_QUALITY)
        temp.rename(Path(folder, f"page-{number}.jpg"))
        _say(page=number)


def _text(document: pdfium.PdfDocument, numbers: list[int]) -> None:
    for number in numbers:
        text_page = document[number - 1].get_textpage()
        _say(page=number, text=text_page.get_text_bounded())


def _unlock(document: pdfium.PdfDocument, dest: str) -> None:
    document.save(dest, flags=pdfium_c.FPDF_REMOVE_SECURITY)
    _say(pages=len(document))


def main(argv: list[str]) -> int:
    command, path, *rest = argv
    password = sys.stdin.readline().rstrip("\n") if command == "unlock" else None
    document = _open(path, password)
    if document is None:
        return 0
    if command == "inspect":
        _inspect(document, int(rest[0]))
    elif command == "render":
        _render(document, rest[0], int(rest[1]), [int(n) for n in rest[2:]])
    elif command == "text":
        _text(document, [int(n) for n in rest])
    elif command == "unlock":
        _unlock(document, rest[0])
    else:
        raise SystemExit(f"unknown command {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
