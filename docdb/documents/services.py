"""What happens to documents: upload, queueing, retry, cancel, rename, deletion.

The work of ingestion itself is in `ingestion` (one turn) and `scheduler` (whose turn).
"""

import hashlib
import logging
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from docdb import pdf
from docdb.documents.files import document_files_delete
from docdb.documents.ingestion import document_fail, document_turn_run, search_withdraw
from docdb.documents.models import Document, Page, RunKind, Status
from docdb.documents.runs import pipeline_run_enqueue
from docdb.documents.scheduler import document_hold_take, hold_release
from docdb.documents.states import document_transition
from docdb.weaviate_store import pages_delete, pages_retitle

logger = logging.getLogger(__name__)


class UploadRejected(Exception):
    def __init__(self, reason: str, *, duplicate_of: Document | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.duplicate_of = duplicate_of


def _title_from_name(name: str) -> str:
    stem = Path(name.replace("\\", "/")).name
    if stem.lower().endswith(".pdf"):
        stem = stem[:-4]
    return (stem.strip() or "Untitled")[:300]


def _sha256_of(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def _upload_check(upload: UploadedFile) -> None:
    name = upload.name or "file"
    if not upload.size:
        raise UploadRejected(f"{name}: the file is empty.")
    if upload.size > settings.UPLOAD_MAX_BYTES:
        limit = filesizeformat(settings.UPLOAD_MAX_BYTES)
        raise UploadRejected(f"{name}: the file is larger than the {limit} limit.")
    upload.seek(0)
    head = upload.read(pdf.SNIFF_HEAD)
    upload.seek(0)
    if not pdf.pdf_sniff(head):
        raise UploadRejected(f"{name}: this file is not a PDF.")


def document_with_checksum(*, owner: User, sha256: str) -> Document | None:
    """The owner's document of this file (its first copy), if they uploaded it already."""
    return Document.objects.filter(owner=owner, sha256=sha256).order_by("created_at", "id").first()


def _duplicate_rejection(name: str | None, original: Document) -> UploadRejected:
    return UploadRejected(
        f"{name}: this file was already uploaded as “{original.title}”.", duplicate_of=original
    )


def document_upload(*, owner: User, upload: UploadedFile) -> Document:
    """Store an uploaded PDF and queue its ingestion once the row is committed."""
    _upload_check(upload)
    sha256 = _sha256_of(upload)
    duplicate = document_with_checksum(owner=owner, sha256=sha256)
    if duplicate is not None:
        raise _duplicate_rejection(upload.name, duplicate)
    original_name = Path((upload.name or "file.pdf").replace("\\", "/")).name[:300]
    document = Document(
        owner=owner,
        title=_title_from_name(original_name),
        original_name=original_name,
        size_bytes=upload.size or 0,
        sha256=sha256,
    )
    try:
        with transaction.atomic():
            document.file.save("original.pdf", upload, save=False)
            document.save()
            document_queue(document_id=document.id)
    except IntegrityError:
        # Another upload of the same file committed between the check above and this insert:
        # the unique constraint let only one through.
        document_files_delete(document.id)
        original = document_with_checksum(owner=owner, sha256=sha256)
        if original is None:
            raise
        raise _duplicate_rejection(upload.name, original) from None
    logger.info("document %s uploaded (%d bytes)", document.id, document.size_bytes)
    return document


def document_queue(*, document_id: uuid.UUID) -> None:
    """Record the queued run with the caller's change (so it shows at once) and, after the
    commit, put a token on the ingest queue; the scheduler decides when the document's turn
    comes."""
    from docdb.documents.tasks import document_turn_task

    pipeline_run_enqueue(document_turn_task, kind=RunKind.PROCESS, document_id=document_id, args=[])


_REQUEUED = {
    "error": "",
    "error_code": "",
    "pages_done": 0,
    "resume_count": 0,
    "started_at": None,
    "finished_at": None,
    "holder": "",
    "heartbeat_at": None,
    "retry_at": None,
    "retries": 0,
    "work_seconds": 0.0,
}


def document_retry(*, document: Document) -> bool:
    """Queue a failed (or finished) document again. False if it is already on its way."""
    with transaction.atomic():
        claimed = document_transition(document_id=document.id, to=Status.QUEUED, fields=_REQUEUED)
        if claimed:
            document_queue(document_id=document.id)
    return claimed


def document_reindex(*, document: Document) -> bool:
    """Import every page into Weaviate again (after the collection was recreated, say)."""
    with transaction.atomic():
        claimed = document_transition(document_id=document.id, to=Status.QUEUED, fields=_REQUEUED)
        if claimed:
            Page.objects.filter(document=document).update(indexed_at=None)
            document_queue(document_id=document.id)
    return claimed


def document_delete(*, document: Document) -> None:
    """Remove the document's Weaviate objects, rows and files, in the order that loses nothing.

    Weaviate goes first: if it is down the call fails and everything stays as it was. A task
    still running on the document notices the row is gone and cleans up what it added after.
    """
    document_id = document.id  # delete() clears the primary key
    pages_delete(owner_id=document.owner_id, document_id=document_id)
    with transaction.atomic():
        document.delete()
        transaction.on_commit(lambda: document_files_delete(document_id))
    logger.info("document %s deleted", document_id)


def document_rename(*, document: Document, title: str) -> Document:
    """Give the document a new title, in the database and on its indexed pages in Weaviate.

    Weaviate goes first, so a failure there leaves the old title everywhere. Ranges imported
    later read the title from the row, which has the new one by then.
    """
    title = " ".join(title.split())[:300]
    if not title:
        raise ValueError("A title cannot be empty.")
    numbers = list(document.pages.filter(indexed_at__isnull=False).values_list("number", flat=True))
    pages_retitle(document_id=document.id, page_numbers=numbers, title=title)
    Document.objects.filter(id=document.id).update(title=title)
    document.title = title
    logger.info("document %s renamed", document.id)
    return document


def document_cancel(*, document: Document) -> bool:
    """Stop a queued or processing document; False if it had already finished.

    A turn running on it notices at its end (the cursor moves only while the document is
    processing) and takes back the pages it added; what earlier turns added goes here.
    """
    cancelled = document_transition(
        document_id=document.id,
        to=Status.CANCELLED,
        fields={"error": "", "pages_done": 0, "finished_at": timezone.now(), "retry_at": None},
    )
    if cancelled:
        search_withdraw(document)
        logger.info("document %s cancelled", document.id)
    return cancelled


def document_ingest(*, document_id: uuid.UUID) -> None:
    """The whole pipeline in this process, turn after turn (management commands, tests)."""
    turn = document_hold_take(document_id=document_id, holder=f"inline/{uuid.uuid4()}")
    if turn is None:
        return
    try:
        while document_turn_run(document_id=document_id, holder=turn.holder):
            pass
    except pdf.PdfError as exc:
        document_fail(document_id=document_id, reason=exc.reason, code=exc.code)
    finally:
        hold_release(turn)
