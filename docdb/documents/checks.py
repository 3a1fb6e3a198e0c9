"""Checks Django runs at start (`migrate`, `runserver`, `check`): what DocDB's settings need
from this machine, said before the first document needs it."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from docdb import pdf


@register()
def ocr_check(**kwargs: Any) -> list[CheckMessage]:
    """Tesseract and its language packs, when OCR is on. A warning, not an error: without
    them DocDB works, and scanned pages are found by their image only."""
    if settings.OCR == "off":
        return []
    try:
        pdf.ocr_check(settings.OCR_LANGUAGES)
    except pdf.OcrError as exc:
        return [
            Warning(
                str(exc),
                hint="Until then scanned pages get no text: keyword search does not find them.",
                id="docdb.W001",
            )
        ]
    return []
