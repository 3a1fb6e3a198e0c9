"""PDF handling with no Django in it: inspect, rasterize and read the text of PDFs (OCR for
scans), and write page images. Two engines, poppler and PDFium, each run in a child process
with a time limit and a memory cap; `reader` picks, file by file and page by page, the one that
reads it; Tesseract, in one too, reads the text of pages that have none.
"""

from docdb.pdf.errors import PDF_ERROR_CODES, PdfError, PdfErrorCode
from docdb.pdf.images import file_write_atomic, image_jpeg_bytes, image_write_jpeg, thumbnail_make
from docdb.pdf.ocr import OcrEngine, OcrError, image_ocr, letters_count, ocr_check, ocr_wanted
from docdb.pdf.pagefiles import image_blank
from docdb.pdf.poppler import SNIFF_HEAD, PdfInfo, pdf_sniff
from docdb.pdf.reader import (
    PagesRendered,
    RenderedPage,
    pages_render,
    pages_render_each,
    pages_text,
    pdf_inspect,
    pdf_unlock,
)

__all__ = [
    "PDF_ERROR_CODES",
    "SNIFF_HEAD",
    "OcrEngine",
    "OcrError",
    "PagesRendered",
    "PdfError",
    "PdfErrorCode",
    "PdfInfo",
    "RenderedPage",
    "file_write_atomic",
    "image_blank",
    "image_jpeg_bytes",
    "image_ocr",
    "image_write_jpeg",
    "letters_count",
    "ocr_check",
    "ocr_wanted",
    "pages_render",
    "pages_render_each",
    "pages_text",
    "pdf_inspect",
    "pdf_sniff",
    "pdf_unlock",
    "thumbnail_make",
]
