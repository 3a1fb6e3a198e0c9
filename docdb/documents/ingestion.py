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
from docdb.documents.files import (
    document_files_delete,
    file_write,
    folder_files,
    original_local,
    page_file,
    page_image_name,
    page_thumbnail_name,
    pages_folder,
    thumbnails_folder,
)
from docdb.documents.models import (
    UNFINISHED,
    DamagedPage,
    Document,
    Page,
    Status,
    TextSource,
)
from docdb.documents.states import document_transition
from docdb.weaviate_store import (
    PageObject,
    objects_library_set,
    objects_misfiled,
    page_uuid,
    pages_delete,
    pages_upsert,
)

logger = logging.getLogger(__name__)

THUMBNAIL_QUALITY = 80
# Rounds of `pages_library_settle` before it leaves the rest to the move that keeps it busy.
_SETTLE_ROUNDS = 5


@dataclass(frozen=True)
class _Rendered:
    number: int
    width: int
    height: int
    jpeg: bytes
    text: str
    text_source: TextSource


def _pages_pending(document: Document, first: int, last: int) -> list[int]:
    """Page numbers in the range not yet indexed with their files stored (a re-run skips)."""
    indexed = list(
        Page.objects.filter(
            document=document, number__range=(first, last), indexed_at__isnull=False
        ).values_list("number", flat=True)
    )
    # Two listings, not a request per file: in a bucket each one is a round trip.
    stored = (
        folder_files(pages_folder(document.id)) & folder_files(thumbnails_folder(document.id))
        if indexed
        else set()
    )
    done = {number for number in indexed if page_file(number) in stored}
    return [number for number in range(first, last + 1) if number not in done]


def _range_render(document: Document, original: Path, first: int, last: int) -> list[_Rendered]:
    """Render the range's pages (whichever engine can), store their images and return them;
    a page no engine renders is recorded as damaged instead, and the others go on."""
    # The limit is per page; one engine call renders the whole range.
    timeout = settings.RENDER_TIMEOUT_SECONDS * (last - first + 1)
    result = pdf.pages_render_each(
        original,
        first=first,
        last=last,
        longest_edge=settings.RENDER_LONGEST_EDGE,
        max_pixels=settings.RENDER_MAX_PIXELS,
        timeout=timeout,
    )
    _damage_record(document, first, last, result.damaged)
    if not result.pages:
        return []
    texts = _range_text(original, result.pages, timeout=timeout)
    rendered = []
    for page in result.pages:
        jpeg = pdf.image_jpeg_bytes(page.image, quality=settings.PAGE_JPEG_QUALITY)
        thumbnail = pdf.thumbnail_make(page.image, width=settings.THUMBNAIL_WIDTH)
        file_write(page_image_name(document.id, page.number), jpeg)
        file_write(
            page_thumbnail_name(document.id, page.number),
            pdf.image_jpeg_bytes(thumbnail, quality=THUMBNAIL_QUALITY),
        )
        text, source = _page_text(document, page, jpeg, layer=texts.get(page.number, ""))
        rendered.append(
            _Rendered(
                number=page.number,
                width=page.image.width,
                height=page.image.height,
                jpeg=jpeg,
                text=text,
                text_source=source,
            )
        )
    return rendered


def _page_text(
    document: Document, page: pdf.RenderedPage, jpeg: bytes, *, layer: str
) -> tuple[str, TextSource]:
    """The page's text and where it came from: its text layer, or what OCR reads on its image
    when the layer is empty or nearly so (a scan). OCR that fails costs the page its OCR text
    only: it keeps what the layer had, and is still found by its image."""
    layer_source = TextSource.LAYER if layer.strip() else TextSource.NONE
    if settings.OCR == "off" or not pdf.ocr_wanted(
        layer, page.image, min_chars=settings.OCR_MIN_CHARS
    ):
        return layer, layer_source
    started = time.monotonic()
    try:
        # The JPEG just stored: at the render size (~175 dpi for A4) Tesseract reads print as
        # well as at ~300 dpi (docs/benchmarks.md, "OCR of scanned pages").
        text = pdf.image_ocr(
            jpeg, languages=settings.OCR_LANGUAGES, timeout=settings.RENDER_TIMEOUT_SECONDS
        )
    except pdf.OcrError as exc:
        logger.warning("document %s page %d: no text from OCR: %s", document.id, page.number, exc)
        return layer, layer_source
    logger.info(
        "document %s page %d: OCR read %d characters in %.1fs",
        document.id,
        page.number,
        len(text),
        time.monotonic() - started,
    )
    if pdf.letters_count(text) <= pdf.letters_count(layer):
        return layer, layer_source
    return text, TextSource.OCR


def _range_text(path: Path, pages: list[pdf.RenderedPage], *, timeout: float) -> dict[int, str]:
    """The rendered pages' text, each from the engine that rendered it. Text helps keyword
    search but a page is found by its image too: a text layer no engine reads is left empty."""
    numbers = [page.number for page in pages]
    try:
        return pdf.pages_text(
            path,
            first=min(numbers),
            last=max(numbers),
            timeout=timeout,
            pdfium_pages=frozenset(p.number for p in pages if p.engine == "pdfium"),
        )
    except pdf.PdfError as exc:
        logger.warning("%s: pages %d-%d have no text: %s", path, min(numbers), max(numbers), exc)
        return {}


def _damage_record(document: Document, first: int, last: int, damaged: list[pdf.PdfError]) -> None:
    """The range's damaged pages as they are now (a range rendered again replaces them)."""
    numbers = [error.page for error in damaged if error.page is not None]
    DamagedPage.objects.filter(document=document, number__range=(first, last)).exclude(
        number__in=numbers
    ).delete()
    # A page rendered by an earlier run and damaged now (the file was unlocked or replaced).
    Page.objects.filter(document=document, number__in=numbers).delete()
    DamagedPage.objects.bulk_create(
        [
            DamagedPage(document=document, number=error.page, reason=error.reason)
            for error in damaged
            if error.page is not None
        ],
        update_conflicts=True,
        unique_fields=["document", "number"],
        update_fields=["reason"],
    )
    for error in damaged:
        logger.warning("document %s: %s", document.id, error.reason)


def page_object(document: Document, *, number: int, text: str, image_jpeg: bytes) -> PageObject:
    """What Weaviate stores for one page of the document."""
    return PageObject(
        document_id=document.id,
        owner_id=document.owner_id,
        library_id=document.library_id,
        title=document.title,
        file_name=document.original_name,
        page_number=number,
        text=text,
        image_jpeg=image_jpeg,
    )


def pages_library_settle(*, document_id: uuid.UUID, written: int | None = None) -> int:
    """Make the document's objects in Weaviate carry the library its row has now, after this
    caller wrote them with the library `written` (None: after a move, or to repair them).
    Returns how many objects were corrected.

    Whoever writes page objects reads the library first, and a move may commit between that
    read and the write (a move writes Weaviate, then the row). So every writer calls this after
    writing, outside a transaction (it must see moves committed since): when the row's library
    is the one written, any move committed later corrects these objects itself; when it is not,
    or after a move, the objects of another library are found by a filter (ids only, no object
    read: `objects_misfiled`) and updated in place, nothing embedded again. A move committed
    during that round is caught by the next. No lock is held while Weaviate works, on SQLite or
    PostgreSQL alike.
    """
    corrected = 0
    for _ in range(_SETTLE_ROUNDS):
        library = (
            Document.objects.filter(id=document_id).values_list("library_id", flat=True).first()
        )
        if library is None or library == written:
            return corrected
        misfiled = objects_misfiled(libraries={document_id: library})
        objects_library_set(object_ids=sorted(misfiled, key=str), library_id=library)
        corrected += len(misfiled)
        written = library
    logger.warning("document %s: its library kept changing; its last move settles it", document_id)
    return corrected


def _range_ingest(document: Document, original: Path, first: int, last: int) -> None:
    pending = _pages_pending(document, first, last)
    if not pending:
        return
    started = time.monotonic()
    rendered = [
        page
        for page in _range_render(document, original, min(pending), max(pending))
        if page.number in pending
    ]
    if not rendered:
        return
    # One upsert: a range run again (a turn taken over from a dead worker) overwrites.
    Page.objects.bulk_create(
        [
            Page(
                document=document,
                number=page.number,
                width=page.width,
                height=page.height,
                text=page.text,
                text_source=page.text_source,
                search_id=page_uuid(document.id, page.number),
            )
            for page in rendered
        ],
        update_conflicts=True,
        unique_fields=["document", "number"],
        update_fields=["width", "height", "text", "text_source", "search_id"],
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
    # A turn's document is unfinished, which no move takes; but it may be cancelled, moved and
    # queued again while this turn still writes.
    pages_library_settle(document_id=document.id, written=document.library_id)
    logger.info(
        "document %s pages %d-%d indexed in %.2fs",
        document.id,
        first,
        last,
        time.monotonic() - started,
    )


def _document_start(document: Document, original: Path) -> bool:
    """Move a queued document to processing and read its page count; False if it failed."""
    if not document_transition(
        document_id=document.id, to=Status.PROCESSING, fields={"started_at": timezone.now()}
    ):
        return False
    try:
        info = pdf.pdf_inspect(
            original,
            max_pages=settings.PDF_MAX_PAGES,
            timeout=settings.RENDER_TIMEOUT_SECONDS,
        )
    except pdf.PdfError as exc:
        document_fail(document_id=document.id, reason=exc.reason, code=exc.code)
        return False
    Document.objects.filter(id=document.id).update(pages_total=info.pages)
    # Pages beyond the current count belong to an older version of the file; drop them.
    Page.objects.filter(document=document, number__gt=info.pages).delete()
    DamagedPage.objects.filter(document=document, number__gt=info.pages).delete()
    document.status = Status.PROCESSING
    document.pages_total = info.pages
    return True


def document_turn_run(*, document_id: uuid.UUID, holder: str) -> bool:
    """One turn on a document this caller holds: start it if it is queued, then index its next
    range of pages. True when the document has pages left for another turn."""
    document = Document.objects.filter(id=document_id, holder=holder).first()
    if document is None or document.status not in UNFINISHED:
        return False
    # The PDF engines read a local file: with a bucket, a copy for this turn only.
    with original_local(document.original_file) as original:
        if document.status == Status.QUEUED and not _document_start(document, original):
            return False
        if document.status != Status.PROCESSING:
            return False
        first = document.pages_done + 1
        last = min(first + settings.RENDER_PAGES_PER_CHUNK - 1, document.pages_total)
        if first <= last:  # else a turn moved the cursor to the end and died before finishing
            try:
                _range_ingest(document, original, first, last)
            except pdf.PdfError as exc:  # the file, not one page: no engine opens it any more
                document_fail(document_id=document_id, reason=exc.reason, code=exc.code)
                return False
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
        pages_delete(document_id=document.id)
        document_files_delete(document.id)  # the files this turn wrote after the deletion
    elif current.status == Status.CANCELLED:
        search_withdraw(current)
    logger.info("document %s changed during its turn; the turn stops", document.id)


def _document_finish(document: Document) -> None:
    """Ready when at least one page was indexed; the damaged ones are listed with it."""
    if not Page.objects.filter(document=document, indexed_at__isnull=False).exists():
        damaged = list(document.damaged_pages.values_list("reason", flat=True)[:1])
        if document.pages_total == 1 and damaged:
            reason = damaged[0]
        else:
            reason = f"None of its {document.pages_total} pages could be rendered."
        document_fail(document_id=document.id, reason=reason, code="damaged")
        return
    if document_transition(
        document_id=document.id,
        to=Status.READY,
        fields={"finished_at": timezone.now(), "error": "", "error_code": ""},
    ):
        logger.info("document %s ready (%d pages)", document.id, document.pages_total)


def search_withdraw(document: Document) -> None:
    """Take the document's pages out of search, so nothing half-imported stays visible."""
    try:
        pages_delete(document_id=document.id)
    except Exception:
        logger.exception("document %s: could not remove its pages from Weaviate", document.id)
    Page.objects.filter(document_id=document.id).update(indexed_at=None)


def document_fail(*, document_id: uuid.UUID, reason: str, code: str = "") -> None:
    """Mark failed, with the reason (and its docdb.pdf error code, when it has one), and take
    its pages out of search."""
    document = Document.objects.filter(id=document_id).first()
    if document is None:
        return
    search_withdraw(document)
    document_transition(
        document_id=document_id,
        to=Status.FAILED,
        fields={
            "error": reason,
            "error_code": code,
            "pages_done": 0,
            "finished_at": timezone.now(),
        },
    )
    logger.warning("document %s failed: %s", document_id, reason)
