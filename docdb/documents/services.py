"""What happens to documents: upload, ingestion, retry, deletion."""

import hashlib
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from docdb import pdf
from docdb.documents.models import Document, Page, Status, page_image_path, page_thumbnail_path
from docdb.documents.states import document_transition
from docdb.weaviate_store import PageObject, page_uuid, pages_delete, pages_retitle, pages_upsert

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
    head = upload.read(1024)
    upload.seek(0)
    if not pdf.pdf_sniff(head):
        raise UploadRejected(f"{name}: this file is not a PDF.")


def document_upload(*, owner: User, upload: UploadedFile) -> Document:
    """Store an uploaded PDF and queue its ingestion once the row is committed."""
    _upload_check(upload)
    sha256 = _sha256_of(upload)
    duplicate = Document.objects.filter(owner=owner, sha256=sha256).first()
    if duplicate is not None:
        raise UploadRejected(
            f"{upload.name}: this file was already uploaded as “{duplicate.title}”.",
            duplicate_of=duplicate,
        )
    original_name = Path((upload.name or "file.pdf").replace("\\", "/")).name[:300]
    document = Document(
        owner=owner,
        title=_title_from_name(original_name),
        original_name=original_name,
        size_bytes=upload.size or 0,
        sha256=sha256,
    )
    with transaction.atomic():
        document.file.save("original.pdf", upload, save=False)
        document.save()
        document_queue(document_id=document.id)
    logger.info("document %s uploaded (%d bytes)", document.id, document.size_bytes)
    return document


def document_queue(*, document_id: uuid.UUID) -> None:
    from docdb.documents.tasks import document_process_task
    from docdb.ops.models import RunKind
    from docdb.ops.runs import pipeline_run_enqueue

    # The run row commits with the caller's change, so the work shows as queued at once; the
    # task is published after the commit.
    pipeline_run_enqueue(document_process_task, kind=RunKind.PROCESS, document_id=document_id)


def document_retry(*, document: Document) -> bool:
    """Queue a failed (or finished) document again. False if it is already on its way."""
    with transaction.atomic():
        claimed = document_transition(
            document_id=document.id,
            to=Status.QUEUED,
            fields={
                "error": "",
                "pages_done": 0,
                "resume_count": 0,
                "started_at": None,
                "finished_at": None,
            },
        )
        if claimed:
            document_queue(document_id=document.id)
    return claimed


def document_reindex(*, document: Document) -> bool:
    """Import every page into Weaviate again (after the collection was recreated, say)."""
    with transaction.atomic():
        claimed = document_transition(
            document_id=document.id,
            to=Status.QUEUED,
            fields={
                "error": "",
                "pages_done": 0,
                "resume_count": 0,
                "started_at": None,
                "finished_at": None,
            },
        )
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
    directory = document.directory
    with transaction.atomic():
        document.delete()
        transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))
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


def document_fail(*, document_id: uuid.UUID, reason: str) -> None:
    """Mark failed and take its pages out of search, so nothing half-imported stays visible."""
    document = Document.objects.filter(id=document_id).first()
    if document is None:
        return
    try:
        pages_delete(owner_id=document.owner_id, document_id=document.id)
    except Exception:
        logger.exception("document %s: could not remove its pages from Weaviate", document_id)
    Page.objects.filter(document_id=document_id).update(indexed_at=None)
    document_transition(
        document_id=document_id,
        to=Status.FAILED,
        fields={"error": reason, "pages_done": 0, "finished_at": timezone.now()},
    )
    logger.warning("document %s failed: %s", document_id, reason)


@dataclass(frozen=True)
class _Rendered:
    number: int
    width: int
    height: int
    jpeg: bytes
    text: str


def _pages_pending(document: Document, first: int, last: int) -> list[int]:
    """Page numbers in the range not yet indexed with their files on disk (a re-run skips)."""
    done = {
        page.number
        for page in Page.objects.filter(
            document=document, number__range=(first, last), indexed_at__isnull=False
        )
        if page.image_path.exists() and page.thumbnail_path.exists()
    }
    return [number for number in range(first, last + 1) if number not in done]


def _range_render(document: Document, first: int, last: int) -> list[_Rendered]:
    path = Path(document.file.path)
    # The limit is per page; one poppler call renders the whole range.
    timeout = settings.RENDER_TIMEOUT_SECONDS * (last - first + 1)
    images = pdf.pages_render(
        path,
        first=first,
        last=last,
        longest_edge=settings.RENDER_LONGEST_EDGE,
        max_pixels=settings.RENDER_MAX_PIXELS,
        timeout=timeout,
    )
    texts = pdf.pages_text(path, first=first, last=last, timeout=timeout)
    rendered = []
    for page in images:
        jpeg = pdf.image_jpeg_bytes(page.image, quality=settings.PAGE_JPEG_QUALITY)
        thumbnail = pdf.thumbnail_make(page.image, width=settings.THUMBNAIL_WIDTH)
        pdf.file_write_atomic(page_image_path(document.id, page.number), jpeg)
        pdf.image_write_jpeg(thumbnail, page_thumbnail_path(document.id, page.number), quality=80)
        rendered.append(
            _Rendered(
                number=page.number,
                width=page.image.width,
                height=page.image.height,
                jpeg=jpeg,
                text=texts.get(page.number, ""),
            )
        )
    return rendered


def page_object(document: Document, *, number: int, text: str, image_jpeg: bytes) -> PageObject:
    """What Weaviate stores for one page of the document."""
    return PageObject(
        document_id=document.id,
        owner_id=document.owner_id,
        title=document.title,
        file_name=document.original_name,
        page_number=number,
        text=text,
        image_jpeg=image_jpeg,
    )


def _range_ingest(document: Document, first: int, last: int) -> None:
    pending = _pages_pending(document, first, last)
    if not pending:
        return
    started = time.monotonic()
    rendered = [
        page
        for page in _range_render(document, min(pending), max(pending))
        if page.number in pending
    ]
    # One upsert: two runs of the same range (a re-delivered task) never trip over each other.
    Page.objects.bulk_create(
        [
            Page(
                document=document,
                number=page.number,
                width=page.width,
                height=page.height,
                text=page.text,
                search_id=page_uuid(document.id, page.number),
            )
            for page in rendered
        ],
        update_conflicts=True,
        unique_fields=["document", "number"],
        update_fields=["width", "height", "text", "search_id"],
    )
    pages_upsert(
        [
            page_object(document, number=page.number, text=page.text, image_jpeg=page.jpeg)
            for page in rendered
        ]
    )
    Page.objects.filter(document=document, number__in=[p.number for p in rendered]).update(
        indexed_at=timezone.now()
    )
    logger.info(
        "document %s pages %d-%d indexed in %.2fs",
        document.id,
        first,
        last,
        time.monotonic() - started,
    )


def document_start(*, document_id: uuid.UUID) -> int | None:
    """Claim the document for processing and read its page count.

    Returns the first page still to index, or None when there is nothing to do (finished,
    failed, deleted, or the PDF cannot be read, which fails the document with the reason).
    A re-delivered start (processing → processing) resumes at the page cursor.
    """
    if not document_transition(
        document_id=document_id, to=Status.PROCESSING, fields={"started_at": timezone.now()}
    ):
        logger.info("document %s is not waiting for processing; nothing to do", document_id)
        return None
    document = Document.objects.get(id=document_id)
    try:
        info = pdf.pdf_inspect(
            Path(document.file.path),
            max_pages=settings.PDF_MAX_PAGES,
            timeout=settings.RENDER_TIMEOUT_SECONDS,
        )
    except pdf.PdfError as exc:
        document_fail(document_id=document_id, reason=exc.reason)
        return None
    Document.objects.filter(id=document_id).update(pages_total=info.pages)
    # Pages beyond the current count belong to an older version of the file; drop them.
    Page.objects.filter(document=document, number__gt=info.pages).delete()
    return min(document.pages_done + 1, info.pages)


def document_range_ingest(
    *, document_id: uuid.UUID, first: int, redelivered: bool = False
) -> int | None:
    """Index one range of pages starting at `first`; returns the next range's first page.

    The page cursor (`pages_done`) moves with a conditional update, so when a range runs twice
    (a re-delivered task, the sweeper resuming a stalled document) only one run advances it and
    queues the next range; the other's work is identical and simply overwritten.

    `redelivered`: the broker hands this range out again because the worker that had it died
    before acknowledging it, perhaps after moving the cursor past it and before queueing the
    next range. No other task will queue that range, so this run does, when the cursor still
    stands at the end of this range (a duplicate of a range that was queued after all is
    harmless, and being no redelivery itself it queues nothing more).
    """
    document = Document.objects.filter(id=document_id, status=Status.PROCESSING).first()
    if document is None:
        return None
    last = min(first + settings.RENDER_PAGES_PER_CHUNK - 1, document.pages_total)
    _range_ingest(document, first, last)
    advanced = Document.objects.filter(
        id=document_id, status=Status.PROCESSING, pages_done=first - 1
    ).update(pages_done=last, updated_at=timezone.now())
    if not advanced:
        current = Document.objects.filter(id=document_id).first()
        if current is None:
            # Deleted under our feet: take back what this run added to Weaviate.
            pages_delete(owner_id=document.owner_id, document_id=document_id)
        elif current.pages_done >= current.pages_total:
            # An earlier run advanced past the last page and stopped before saying so.
            _document_finish(current)
        elif redelivered and current.status == Status.PROCESSING and current.pages_done == last:
            logger.warning(
                "document %s: range from page %d was redelivered after it was done; "
                "queueing the next range",
                document_id,
                first,
            )
            return last + 1
        return None
    if last < document.pages_total:
        return last + 1
    _document_finish(document)
    return None


def _document_finish(document: Document) -> None:
    if document_transition(
        document_id=document.id,
        to=Status.READY,
        fields={"finished_at": timezone.now(), "error": ""},
    ):
        logger.info("document %s ready (%d pages)", document.id, document.pages_total)


def document_ingest(*, document_id: uuid.UUID) -> None:
    """The whole pipeline in this process, range after range (management commands, tests)."""
    first = document_start(document_id=document_id)
    try:
        while first is not None:
            first = document_range_ingest(document_id=document_id, first=first)
    except pdf.PdfError as exc:
        document_fail(document_id=document_id, reason=exc.reason)


def documents_stalled(*, older_than_seconds: int) -> list[Document]:
    """Documents waiting or processing with no progress for that long: their task was lost
    (Redis lost the queue, the next range could not be queued) and nothing will move them."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        Document.objects.filter(
            status__in=[Status.QUEUED, Status.PROCESSING], updated_at__lt=cutoff
        )
    )


def document_resume_claim(*, document: Document, max_resumes: int) -> bool:
    """Claim a stalled document for resuming (one sweeper wins); past the bound, fail it."""
    if document.resume_count >= max_resumes:
        document_fail(
            document_id=document.id,
            reason=f"Processing stopped {document.resume_count} times without finishing. "
            "The worker may be running out of memory or time on this file; retry it, or "
            "split the PDF.",
        )
        return False
    claimed = Document.objects.filter(
        id=document.id, status=document.status, updated_at=document.updated_at
    ).update(resume_count=F("resume_count") + 1, updated_at=timezone.now())
    return claimed == 1
