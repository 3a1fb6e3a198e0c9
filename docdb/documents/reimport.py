"""Repairs that do not redo the whole pipeline: re-import pages into Weaviate from the files
already stored, restore missing page images and thumbnails, write the library on pages indexed
before libraries, rebuild the whole index.
"""

import io
import logging
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image

from docdb import pdf
from docdb.documents.files import file_exists, file_read, file_write, original_local
from docdb.documents.ingestion import THUMBNAIL_QUALITY, page_object, pages_library_settle
from docdb.documents.models import Document, Page, PipelineRun, RunKind, Status
from docdb.documents.runs import pipeline_run_enqueue
from docdb.weaviate_store import (
    PageObject,
    collection_recreate,
    pages_count,
    pages_delete,
    pages_library_set,
    pages_upsert,
    pages_without_library,
)

logger = logging.getLogger(__name__)


class RepairImpossible(Exception):
    """A file cannot be restored because what it is made from is gone too."""


def _page_image_render(document: Document, number: int) -> Image.Image:
    if not file_exists(document.original_file):
        raise RepairImpossible(
            f"page {number}: the page image and the original PDF are both missing; "
            "upload the file again"
        )
    with original_local(document.original_file) as original:
        (rendered,) = pdf.pages_render(
            original,
            first=number,
            last=number,
            longest_edge=settings.RENDER_LONGEST_EDGE,
            max_pixels=settings.RENDER_MAX_PIXELS,
            timeout=settings.RENDER_TIMEOUT_SECONDS,
        )
    return rendered.image


def page_files_restore(*, page: Page) -> list[str]:
    """Write the page image and thumbnail if either is missing; says which were restored.

    A thumbnail is made from the page image when that is there (no PDF rendering); a missing
    page image is rendered again from the original PDF, that one page only.
    """
    restored = []
    image: Image.Image | None = None
    if not file_exists(page.image_name):
        image = _page_image_render(page.document, page.number)
        file_write(page.image_name, pdf.image_jpeg_bytes(image, quality=settings.PAGE_JPEG_QUALITY))
        restored.append(f"page {page.number} image")
    if not file_exists(page.thumbnail_name):
        if image is None:
            with Image.open(io.BytesIO(file_read(page.image_name))) as stored:
                image = stored.convert("RGB")
        thumbnail = pdf.thumbnail_make(image, width=settings.THUMBNAIL_WIDTH)
        file_write(page.thumbnail_name, pdf.image_jpeg_bytes(thumbnail, quality=THUMBNAIL_QUALITY))
        restored.append(f"page {page.number} thumbnail")
    return restored


def _page_objects(document: Document, pages: list[Page]) -> list[PageObject]:
    objects = []
    for page in pages:
        page_files_restore(page=page)
        objects.append(
            page_object(
                document,
                number=page.number,
                text=page.text,
                image_jpeg=file_read(page.image_name),
            )
        )
    return objects


def document_reimport(*, document_id: uuid.UUID, numbers: Iterable[int] | None = None) -> int:
    """Upsert the document's pages (all, or these numbers) into Weaviate from the stored page
    images and the text in the database; no PDF rendering unless a page image is missing.

    Only a ready document is re-imported: one on its way through the pipeline will be imported
    by it anyway. A move while it runs leaves the pages in the new library: the objects are
    written with the library read at the start, then settled (`pages_library_settle`).
    Returns how many pages went to Weaviate.
    """
    document = Document.objects.filter(id=document_id, status=Status.READY).first()
    if document is None:
        return 0
    pages = Page.objects.filter(document=document).order_by("number")
    if numbers is not None:
        pages = pages.filter(number__in=list(numbers))
    all_pages = list(pages.select_related("document"))
    imported = 0
    chunk = settings.RENDER_PAGES_PER_CHUNK
    for start in range(0, len(all_pages), chunk):
        batch = all_pages[start : start + chunk]
        pages_upsert(_page_objects(document, batch))
        Page.objects.filter(id__in=[page.id for page in batch]).update(indexed_at=timezone.now())
        imported += len(batch)
    if not Document.objects.filter(id=document_id).exists():
        # Deleted while we imported: take back what this call added.
        pages_delete(document_id=document_id)
        return 0
    pages_library_settle(document_id=document_id, written=document.library_id)
    logger.info("document %s: %d pages re-imported into Weaviate", document_id, imported)
    return imported


def document_reimport_queue(*, document: Document) -> PipelineRun | None:
    """Queue a re-import of a ready document; None when it is not ready (nothing to import)."""
    from docdb.documents.tasks import document_reimport_task

    if document.status != Status.READY:
        return None
    with transaction.atomic():
        return pipeline_run_enqueue(
            document_reimport_task, kind=RunKind.REIMPORT, document_id=document.id
        )


def libraries_backfill() -> int:
    """Write each document's library on its pages in Weaviate where they lack it (a collection
    indexed before libraries existed; `weaviate_schema` adds the property, then calls this at
    start-up). Returns how many documents were written.

    A partial update of one property: nothing is embedded again. Safe to run twice, and to
    break off: it asks first whether any object lacks a library (two counts, all it costs once
    done), then skips each document whose pages all carry the right one.
    """
    if not pages_without_library():
        return 0
    written = 0
    for document in Document.objects.only("id", "library_id").order_by("created_at", "id"):
        numbers = list(
            document.pages.filter(indexed_at__isnull=False).values_list("number", flat=True)
        )
        if not numbers:
            continue
        if pages_count(document_id=document.id, library_id=document.library_id) == len(numbers):
            continue
        pages_library_set(
            document_id=document.id, page_numbers=numbers, library_id=document.library_id
        )
        # Moved since it was read (start-up runs while the web serves): the move's library.
        pages_library_settle(document_id=document.id, written=document.library_id)
        written += 1
    logger.warning("wrote the library on the pages of %d documents", written)
    return written


def index_rebuild() -> int:
    """Drop and recreate the Weaviate collection, then queue a re-import of every ready
    document. Returns how many were queued. Search is incomplete until they have run."""
    collection_recreate()
    with transaction.atomic():
        Page.objects.update(indexed_at=None)
        queued = 0
        for document in Document.objects.filter(status=Status.READY).only("id", "status"):
            queued += document_reimport_queue(document=document) is not None
    logger.warning("Weaviate collection recreated; %d documents queued for re-import", queued)
    return queued
