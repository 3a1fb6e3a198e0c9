"""What happens to documents: upload, queueing, retry, cancel, rename, move, deletion.

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
from docdb.documents.ingestion import (
    document_fail,
    document_turn_run,
    pages_library_settle,
    search_withdraw,
)
from docdb.documents.models import UNFINISHED, Document, Library, Page, RunKind, Status
from docdb.documents.runs import pipeline_run_enqueue
from docdb.documents.scheduler import document_hold_take, hold_kept, hold_release
from docdb.documents.states import document_transition
from docdb.documents.tags import tag_get_or_create
from docdb.weaviate_store import pages_delete, pages_library_set, pages_retitle

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


def document_with_checksum(*, library: Library, sha256: str) -> Document | None:
    """The library's document of this file (its first copy), if it holds it already."""
    return (
        Document.objects.filter(library=library, sha256=sha256)
        .select_related("library")
        .order_by("created_at", "id")
        .first()
    )


def _duplicate_rejection(name: str | None, original: Document) -> UploadRejected:
    return UploadRejected(
        f"{name}: this file was already uploaded as “{original.title}”. It is in the library "
        f"“{original.library.name}”.",
        duplicate_of=original,
    )


def document_upload(
    *, owner: User, upload: UploadedFile, library: Library | None = None
) -> Document:
    """Store an uploaded PDF in the library (the uploader's personal one unless given) and
    queue its ingestion once the row is committed. The caller checked that the uploader may
    add documents to the library (`libraries.library_for_upload`)."""
    _upload_check(upload)
    library = library or Library.objects.personal(owner)
    sha256 = _sha256_of(upload)
    duplicate = document_with_checksum(library=library, sha256=sha256)
    if duplicate is not None:
        raise _duplicate_rejection(upload.name, duplicate)
    original_name = Path((upload.name or "file.pdf").replace("\\", "/")).name[:300]
    document = Document(
        owner=owner,
        library=library,
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
        original = document_with_checksum(library=library, sha256=sha256)
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
    pages_delete(document_id=document_id)
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


class MoveRefused(Exception):
    """Why a document cannot move to a library; the message is fit to show."""


def document_move(*, document: Document, library: Library, user: User) -> bool:
    """Move the document, its pages' objects in Weaviate and its tags to another library.
    False when it is there already. The caller checked that `user` is an editor of both.

    Weaviate goes first, in place (a partial update: nothing is embedded again); if the
    database then refuses, the objects go back. A document still being processed stays where
    it is: a turn under way would index its next pages with the library it read. A re-import
    that read the old library and wrote after the first update is caught at the end: the
    objects are settled on the library the row has (`pages_library_settle`).
    """
    if document.library_id == library.id:
        return False
    if not document.is_terminal:
        raise MoveRefused("it is still being processed; move it once it is done")
    copy = document_with_checksum(library=library, sha256=document.sha256)
    if copy is not None:
        raise MoveRefused(f"the library “{library.name}” already holds this file as “{copy.title}”")
    numbers = list(document.pages.filter(indexed_at__isnull=False).values_list("number", flat=True))
    source = document.library_id
    pages_library_set(document_id=document.id, page_numbers=numbers, library_id=library.id)
    try:
        with transaction.atomic():
            names = [tag.name for tag in document.tags.all()]
            # Only while it is still finished: a retry queued meanwhile keeps it where it is.
            moved = Document.objects.filter(id=document.id).exclude(status__in=UNFINISHED)
            if not moved.update(library=library):
                raise MoveRefused("it was queued to be processed again meanwhile")
            # Tags are the library's: the document takes tags of the same names in its new one.
            document.tags.set(
                [tag_get_or_create(library=library, owner=user, name=name) for name in names]
            )
    except IntegrityError:
        pages_library_set(document_id=document.id, page_numbers=numbers, library_id=source)
        raise MoveRefused(f"the library “{library.name}” already holds this file") from None
    except MoveRefused:
        pages_library_set(document_id=document.id, page_numbers=numbers, library_id=source)
        raise
    finally:
        # Only indexed pages are in search: a writer still writing marks its pages indexed
        # after writing them, then settles them itself.
        if document.pages.filter(indexed_at__isnull=False).exists():
            pages_library_settle(document_id=document.id)
    document.library = library
    logger.info("document %s moved to library %s", document.id, library.id)
    return True


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
        # Its heartbeat, as a worker's turn keeps: a turn longer than DOCDB_PIPELINE_HOLD_SECONDS
        # (real pages on a CPU, an embedder retried) would look like a dead worker's and be taken.
        with hold_kept(turn):
            while document_turn_run(document_id=document_id, holder=turn.holder):
                pass
    except pdf.PdfError as exc:
        document_fail(document_id=document_id, reason=exc.reason, code=exc.code)
    finally:
        hold_release(turn)
