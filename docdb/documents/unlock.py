"""Unlocking a password-protected PDF with the password its owner gives.

The password is used once, in this request: PDFium (in its capped child process, the
password on its stdin) writes a copy of the file without the encryption, which replaces the
stored original, and the document is queued again. The password is stored nowhere, neither
in the database nor in a queued task, and the workers render the copy like any other PDF.
The document keeps the checksum of the uploaded file, so uploading that file again is still
recognised as a duplicate.
"""

import logging
import tempfile
from pathlib import Path

from django.conf import settings

from docdb import pdf
from docdb.documents.files import file_store, original_local
from docdb.documents.models import Document
from docdb.documents.services import document_retry

logger = logging.getLogger(__name__)

PASSWORD_MAX_CHARS = 1000


def document_unlock(*, document: Document, password: str) -> bool:
    """Replace the protected original with an unencrypted copy and queue the document again.
    False when the password does not open it (or it needs none); PdfError when the file
    cannot be read at all."""
    if not document.needs_password or not password or len(password) > PASSWORD_MAX_CHARS:
        return False
    with (
        original_local(document.original_file) as original,
        tempfile.TemporaryDirectory() as folder,
    ):
        unlocked = Path(folder) / "unlocked.pdf"
        try:
            pdf.pdf_unlock(
                original, unlocked, password=password, timeout=settings.RENDER_TIMEOUT_SECONDS
            )
        except pdf.PdfError as exc:
            if exc.code == "encrypted":
                logger.info("document %s: a wrong password", document.id)
                return False
            raise
        file_store(document.original_file, unlocked)
    logger.info("document %s unlocked", document.id)
    return document_retry(document=document)
