"""Ingestion: one turn of work on a held document, i.e. its start and one range of its pages.

The scheduler decides which document gets the next turn and gives the turn's task a hold on
it; everything here runs under that hold, so no other worker works on the same document at
the same time. The page cursor (`pages_done`) moves only while the hold is still this turn's:
a turn whose hold was taken over (its worker was thought dead) changes nothing any more.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from docdb import pdf
from docdb.documents.models import Document, Page, Status, page_image_path, page_thumbnail_path
from docdb.documents.states import document_transition
from docdb.weaviate_store import PageObject, page_uuid, pages_delete, pages_upsert

logger = logging.getLogger(__name__)


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
    # One upsert: a range run again (a turn taken over from a dead worker) overwrites.
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


def _document_start(document: Document) -> bool:
    """Move a queued document to processing and read its page count; False if it failed."""
    if not document_transition(
        document_id=document.id, to=Status.PROCESSING, fields={"started_at": timezone.now()}
    ):
        return False
    try:
        info = pdf.pdf_inspect(
            Path(document.file.path),
            max_pages=settings.PDF_MAX_PAGES,
            timeout=settings.RENDER_TIMEOUT_SECONDS,
        )
    except pdf.PdfError as exc:
        document_fail(document_id=document.id, reason=exc.reason)
        return False
    Document.objects.filter(id=document.id).update(pages_total=info.pages)
    # Pages beyond the current count belong to an older version of the file; drop them.
    Page.objects.filter(document=document, number__gt=info.pages).delete()
    document.status = Status.PROCESSING
    document.pages_total = info.pages
    return True


def document_turn_run(*, document_id: uuid.UUID, holder: str) -> bool:
    """One turn on a document this caller holds: start it if it is queued, then index its next
    range of pages. True when the document has pages left for another turn."""
    document = Document.objects.filter(id=document_id, holder=holder).first()
    if document is None:
        return False
    if document.status == Status.QUEUED and not _document_start(document):
        return False
    if document.status != Status.PROCESSING:
        return False
    first = document.pages_done + 1
    last = min(first + settings.RENDER_PAGES_PER_CHUNK - 1, document.pages_total)
    if first <= last:  # else a turn moved the cursor to the end and died before finishing
        _range_ingest(document, first, last)
    advanced = Document.objects.filter(
        id=document_id, status=Status.PROCESSING, holder=holder, pages_done=first - 1
    ).update(pages_done=last, retries=0, updated_at=timezone.now())
    if not advanced:
        _turn_overtaken(document)
        return False
    if last < document.pages_total:
        return True
    _document_finish(document)
    return False


def _turn_overtaken(document: Document) -> None:
    """The document changed under this turn: deleted or cancelled (take back what the turn
    added to search), or its hold was taken over (the new holder goes on; nothing to do)."""
    current = Document.objects.filter(id=document.id).first()
    if current is None:
        pages_delete(owner_id=document.owner_id, document_id=document.id)
    elif current.status == Status.CANCELLED:
        search_withdraw(current)
    logger.info("document %s changed during its turn; the turn stops", document.id)


def _document_finish(document: Document) -> None:
    if document_transition(
        document_id=document.id,
        to=Status.READY,
        fields={"finished_at": timezone.now(), "error": ""},
    ):
        logger.info("document %s ready (%d pages)", document.id, document.pages_total)


def search_withdraw(document: Document) -> None:
    """Take the document's pages out of search, so nothing half-imported stays visible."""
    try:
        pages_delete(owner_id=document.owner_id, document_id=document.id)
    except Exception:
        logger.exception("document %s: could not remove its pages from Weaviate", document.id)
    Page.objects.filter(document_id=document.id).update(indexed_at=None)


def document_fail(*, document_id: uuid.UUID, reason: str) -> None:
    """Mark failed, with the reason, and take its pages out of search."""
    document = Document.objects.filter(id=document_id).first()
    if document is None:
        return
    search_withdraw(document)
    document_transition(
        document_id=document_id,
        to=Status.FAILED,
        fields={"error": reason, "pages_done": 0, "finished_at": timezone.now()},
    )
    logger.warning("document %s failed: %s", document_id, reason)
