"""PDF handling with no Django in it: inspect, rasterize and read the text of PDFs, and write
page images. Every poppler call runs in a child process with a time limit and a memory cap.
"""

from docdb.pdf.errors import PDF_ERROR_CODES, PdfError, PdfErrorCode
from docdb.pdf.images import file_write_atomic, image_jpeg_bytes, image_write_jpeg, thumbnail_make
from docdb.pdf.poppler import (
    PdfInfo,
    RenderedPage,
    pages_render,
    pages_text,
    pdf_inspect,
    pdf_sniff,
)

__all__ = [
    "PDF_ERROR_CODES",
    "PdfError",
    "PdfErrorCode",
    "PdfInfo",
    "RenderedPage",
    "file_write_atomic",
    "image_jpeg_bytes",
    "image_write_jpeg",
    "pages_render",
    "pages_text",
    "pdf_inspect",
    "pdf_sniff",
    "thumbnail_make",
]
