"""Why a PDF could not be handled, in words for the person who uploaded it."""

from typing import Literal, get_args

PdfErrorCode = Literal[
    "not_pdf", "empty", "encrypted", "damaged", "too_many_pages", "page_too_large", "timeout"
]
PDF_ERROR_CODES: tuple[PdfErrorCode, ...] = get_args(PdfErrorCode)

REASONS: dict[PdfErrorCode, str] = {
    "not_pdf": "This file is not a PDF.",
    "empty": "The file is empty.",
    "encrypted": "This PDF is password-protected.",
    "damaged": "The file is damaged and could not be read.",
    "too_many_pages": "This PDF has too many pages.",
    "page_too_large": "A page of this PDF is too large to render.",
    "timeout": "This PDF took too long to read.",
}


class PdfError(Exception):
    """A PDF we cannot process. `reason` is shown to people; `code` is for programs.

    `page` is set when one page is to blame, so a caller may report or skip it.
    """

    def __init__(
        self, code: PdfErrorCode, reason: str | None = None, page: int | None = None
    ) -> None:
        self.code = code
        self.reason = reason or REASONS[code]
        self.page = page
        super().__init__(self.reason)

    def __reduce__(self) -> tuple[type["PdfError"], tuple[PdfErrorCode, str, int | None]]:
        # Celery pickles exceptions; by default that would rebuild this one as PdfError(reason).
        return (type(self), (self.code, self.reason, self.page))
