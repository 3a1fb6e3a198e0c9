"""What happens to documents: upload, ingestion, retry, deletion."""

import hashlib
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from docdb import pdf
from docdb.documents.models import Document, Page, Status, page_image_path, page_thumbnail_path
from docdb.documents.states import document_transition
from docdb.weaviate_store import PageObject, pages_delete, pages_upsert

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

    transaction.on_commit(lambda: document_process_task.delay(str(document_id)))


def document_retry(*, document: Document) -> bool:
    """Queue a failed (or finished) document again. False if it is already on its way."""
    with transaction.atomic():
        claimed = document_transition(
            document_id=document.id,
            to=Status.QUEUED,
            fields={"error": "", "pages_done": 0, "started_at": None, "finished_at": None},
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
            fields={"error": "", "pages_done": 0, "started_at": None, "finished_at": None},
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
    pages_delete(owner_id=document.owner_id, document_id=document.id)
    directory = document.directory
    with transaction.atomic():
        document.delete()
        transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))
    logger.info("document %s deleted", document.id)


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


def _page_ranges(total: int, size: int) -> Iterator[tuple[int, int]]:
    for first in range(1, total + 1, size):
        yield first, min(first + size - 1, total)


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
    images = pdf.pages_render(
        path,
        first=first,
        last=last,
        longest_edge=settings.RENDER_LONGEST_EDGE,
        max_pixels=settings.RENDER_MAX_PIXELS,
        timeout=settings.RENDER_TIMEOUT_SECONDS,
    )
    texts = pdf.pages_text(path, first=first, last=last, timeout=settings.RENDER_TIMEOUT_SECONDS)
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
    for page in rendered:
        Page.objects.update_or_create(
            document=document,
            number=page.number,
            defaults={"width": page.width, "height": page.height, "text": page.text},
        )
    pages_upsert(
        [
            PageObject(
                document_id=document.id,
                owner_id=document.owner_id,
                title=document.title,
                file_name=document.original_name,
                page_number=page.number,
                text=page.text,
                image_jpeg=page.jpeg,
            )
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


class DocumentGone(Exception):
    """The document was deleted while it was being processed."""


def _progress_record(document: Document) -> None:
    done = Page.objects.filter(document=document, indexed_at__isnull=False).count()
    if not Document.objects.filter(id=document.id).update(pages_done=done):
        # Deleted under our feet: take back what this run added to Weaviate.
        pages_delete(owner_id=document.owner_id, document_id=document.id)
        raise DocumentGone(str(document.id))


def document_ingest(*, document_id: uuid.UUID) -> None:
    """Rasterize, extract text, make thumbnails and index every page, one range at a time.

    Safe to run twice: a second delivery claims processing → processing, skips the pages already
    indexed and overwrites the rest under their deterministic ids.
    """
    if not document_transition(
        document_id=document_id, to=Status.PROCESSING, fields={"started_at": timezone.now()}
    ):
        logger.info("document %s is not waiting for processing; nothing to do", document_id)
        return
    document = Document.objects.get(id=document_id)
    try:
        info = pdf.pdf_inspect(
            Path(document.file.path),
            max_pages=settings.PDF_MAX_PAGES,
            timeout=settings.RENDER_TIMEOUT_SECONDS,
        )
    except pdf.PdfError as exc:
        document_fail(document_id=document_id, reason=exc.reason)
        return
    Document.objects.filter(id=document_id).update(pages_total=info.pages)
    # Pages beyond the current count belong to an older version of the file; drop them.
    Page.objects.filter(document=document, number__gt=info.pages).delete()
    try:
        for first, last in _page_ranges(info.pages, settings.RENDER_PAGES_PER_CHUNK):
            _range_ingest(document, first, last)
            _progress_record(document)
    except pdf.PdfError as exc:
        document_fail(document_id=document_id, reason=exc.reason)
        return
    except DocumentGone:
        logger.info("document %s was deleted during processing", document_id)
        return
    document_transition(
        document_id=document_id,
        to=Status.READY,
        fields={"finished_at": timezone.now(), "pages_done": info.pages, "error": ""},
    )
    logger.info("document %s ready (%d pages)", document_id, info.pages)
