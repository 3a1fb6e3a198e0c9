"""Does every document agree with itself? Pages in the database, objects in Weaviate and files
on disk, compared document by document, and repaired where they differ.

Used by the operations page and by `manage.py reconcile [--fix]`.
"""

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from docdb.documents.files import (
    file_exists,
    folder_files,
    page_file,
    pages_folder,
    thumbnails_folder,
)
from docdb.documents.ingestion import pages_library_settle
from docdb.documents.models import Document, Page, Status
from docdb.documents.reimport import RepairImpossible, document_reimport, page_files_restore
from docdb.documents.services import document_reindex
from docdb.ops.models import ConsistencyCheck
from docdb.pdf import PdfError
from docdb.weaviate_store import (
    WeaviateImportError,
    WeaviateUnavailable,
    objects_misfiled,
    pages_delete,
    pages_delete_numbers,
    pages_inventory,
)

logger = logging.getLogger(__name__)

TERMINAL = (Status.READY, Status.FAILED, Status.CANCELLED)
# The operations page shows the newest check; a few older ones stay for the admin's history.
CHECKS_KEPT = 20


@dataclass
class DocumentCheck:
    """One document's three views of its pages, and where they disagree."""

    document_id: uuid.UUID
    title: str
    owner: str
    status: str
    pages_total: int
    pages_in_db: int
    objects_in_weaviate: int
    missing_rows: list[int] = field(default_factory=list)
    missing_objects: list[int] = field(default_factory=list)
    extra_objects: list[int] = field(default_factory=list)
    missing_images: list[int] = field(default_factory=list)
    missing_thumbnails: list[int] = field(default_factory=list)
    # Pages whose object carries another library than the document's: searched in the wrong one.
    misfiled_objects: list[int] = field(default_factory=list)
    original_missing: bool = False

    @property
    def consistent(self) -> bool:
        return not self.problems

    @property
    def problems(self) -> list[str]:
        found = []
        for label, numbers in (
            ("pages missing from the database", self.missing_rows),
            ("pages missing from Weaviate", self.missing_objects),
            ("objects in Weaviate with no page", self.extra_objects),
            ("page images missing", self.missing_images),
            ("thumbnails missing", self.missing_thumbnails),
            ("pages in another library in Weaviate", self.misfiled_objects),
        ):
            if numbers:
                found.append(f"{label}: {_numbers_text(numbers)}")
        if self.original_missing:
            found.append("the original PDF is missing")
        return found


@dataclass
class ConsistencyReport:
    checked: int = 0
    in_progress: int = 0
    documents: list[DocumentCheck] = field(default_factory=list)
    # Objects of documents that are not in the database: document id → page count.
    orphans: dict[uuid.UUID, int] = field(default_factory=dict)

    @property
    def problems(self) -> list[DocumentCheck]:
        return [check for check in self.documents if not check.consistent]

    @property
    def consistent(self) -> bool:
        return not self.problems and not self.orphans


def _numbers_text(numbers: list[int], limit: int = 12) -> str:
    shown = ", ".join(str(number) for number in numbers[:limit])
    return shown + (f" … ({len(numbers)} in all)" if len(numbers) > limit else "")


def _document_check(
    document: Document, numbers: set[int], objects: set[int], misfiled: set[int]
) -> DocumentCheck:
    check = DocumentCheck(
        document_id=document.id,
        title=document.title,
        owner=document.owner.get_username(),
        status=document.status,
        pages_total=document.pages_total,
        pages_in_db=len(numbers),
        objects_in_weaviate=len(objects),
        original_missing=not file_exists(document.original_file),
    )
    if document.status != Status.READY:
        # A failed or cancelled document keeps nothing in search (it was withdrawn).
        check.extra_objects = sorted(objects)
        return check
    # A damaged page (no engine renders it) has no row or object by design.
    damaged = set(document.damaged_pages.values_list("number", flat=True))
    expected = set(range(1, document.pages_total + 1)) - damaged
    check.missing_rows = sorted(expected - numbers)
    check.missing_objects = sorted((numbers & expected) - objects)
    check.extra_objects = sorted(objects - (numbers & expected))
    check.misfiled_objects = sorted(misfiled & numbers)
    # Two listings per document, not a request per file: in a bucket each one is a round trip.
    images = folder_files(pages_folder(document.id))
    thumbnails = folder_files(thumbnails_folder(document.id))
    for number in sorted(numbers):
        if page_file(number) not in images:
            check.missing_images.append(number)
        if page_file(number) not in thumbnails:
            check.missing_thumbnails.append(number)
    return check


def consistency_check() -> ConsistencyReport:
    """Compare every finished document's pages in the database, Weaviate and on disk.

    The database is read first: its pages' object ids (Page.search_id) say which page each
    object listed in Weaviate is, so Weaviate need not read the objects themselves (page images
    included; see `pages_inventory`). The documents are listed again afterwards, as one
    created in between has objects of a document the check did not know, and one moved in
    between may have objects of its new library already.

    Each ready document's objects are compared with its library by filters alone
    (`objects_misfiled`), which costs next to nothing beside the listing.
    """
    documents = list(Document.objects.select_related("owner").order_by("created_at"))
    numbers: dict[uuid.UUID, set[int]] = {}
    known: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
    rows = Page.objects.order_by().values_list("document_id", "number", "search_id")
    for document_id, number, search_id in rows.iterator(chunk_size=10_000):
        numbers.setdefault(document_id, set()).add(number)
        if search_id is not None:
            known[search_id] = (document_id, number)
    inventory = pages_inventory(documents=[document.id for document in documents], known=known)
    misfiled: dict[uuid.UUID, set[int]] = {}
    libraries = {d.id: d.library_id for d in documents if d.status == Status.READY}
    for object_id in objects_misfiled(libraries=libraries):
        if object_id in known:
            document_id, number = known[object_id]
            misfiled.setdefault(document_id, set()).add(number)
    # Documents deleted since, whose objects went too, are not checked; documents created since
    # are not orphans; documents moved since are not misfiled.
    existing = dict(Document.objects.order_by().values_list("id", "library_id"))
    report = ConsistencyReport()
    for document in documents:
        if document.id not in existing:
            continue
        report.checked += 1
        if document.status not in TERMINAL:
            # Still in the pipeline: its three views legitimately differ for now.
            report.in_progress += 1
            continue
        report.documents.append(
            _document_check(
                document,
                numbers.get(document.id, set()),
                inventory.pages.get(document.id, set()),
                misfiled.get(document.id, set())
                if existing[document.id] == document.library_id
                else set(),
            )
        )
    report.orphans = {
        document_id: count
        for document_id, count in inventory.others.items()
        if document_id not in existing
    }
    return report


def _document_repair(check: DocumentCheck) -> list[str]:
    document = Document.objects.filter(id=check.document_id).first()
    if document is None:
        return []
    name = f"“{check.title}” ({check.document_id})"
    if document.status != Status.READY:
        deleted = pages_delete(document_id=document.id)
        return [f"{name}: removed {deleted} objects of a {document.status} document"]
    if check.missing_rows:
        # Without the page rows there is no text to import: run the whole pipeline again.
        queued = document_reindex(document=document)
        return [f"{name}: pages missing from the database; re-run queued: {queued}"]
    done = []
    for page in Page.objects.filter(
        document=document, number__in=set(check.missing_images) | set(check.missing_thumbnails)
    ).select_related("document"):
        restored = page_files_restore(page=page)
        if restored:
            done.append(f"{name}: restored {', '.join(restored)}")
    if check.missing_objects:
        imported = document_reimport(document_id=document.id, numbers=check.missing_objects)
        done.append(f"{name}: re-imported {imported} pages into Weaviate")
    if check.extra_objects:
        deleted = pages_delete_numbers(document_id=document.id, numbers=check.extra_objects)
        done.append(f"{name}: deleted {deleted} objects of pages that do not exist")
    if check.misfiled_objects:
        # The library the row has now (not the report's: it may have moved since), written in
        # place like a move writes it: nothing is embedded again.
        corrected = pages_library_settle(document_id=document.id)
        done.append(f"{name}: put {corrected} objects back in the document's library")
    return done


def consistency_repair(report: ConsistencyReport) -> tuple[list[str], list[str]]:
    """Repair what the report found; returns (what was done, what could not be done).

    Each document is repaired on its own, so one that cannot be repaired (its original PDF
    is gone too) does not stop the others.
    """
    done: list[str] = []
    failed: list[str] = []
    for check in report.problems:
        try:
            done += _document_repair(check)
        except (RepairImpossible, PdfError, WeaviateUnavailable, WeaviateImportError) as exc:
            failed.append(f"“{check.title}” ({check.document_id}): {exc}")
            logger.warning("reconcile: document %s not repaired: %s", check.document_id, exc)
    for document_id, count in report.orphans.items():
        deleted = pages_delete(document_id=document_id)
        done.append(f"deleted {deleted} of {count} orphaned objects of document {document_id}")
    for line in done:
        logger.info("reconcile: %s", line)
    return done, failed


def report_to_json(report: ConsistencyReport) -> dict[str, Any]:
    data = asdict(report)
    return json.loads(json.dumps(data, default=str))


def report_from_json(data: dict[str, Any]) -> ConsistencyReport:
    return ConsistencyReport(
        checked=data["checked"],
        in_progress=data["in_progress"],
        documents=[
            DocumentCheck(**{**check, "document_id": uuid.UUID(check["document_id"])})
            for check in data["documents"]
        ],
        orphans={uuid.UUID(key): count for key, count in data["orphans"].items()},
    )


def consistency_check_record() -> ConsistencyCheck:
    """Run the check and keep its result for the operations page (or why it could not run)."""
    started = time.monotonic()
    try:
        report, error = report_to_json(consistency_check()), ""
    except WeaviateUnavailable as exc:
        report, error = None, f"The consistency check needs Weaviate: {exc}"
    check = ConsistencyCheck.objects.create(
        seconds=time.monotonic() - started, report=report, error=error
    )
    stale = ConsistencyCheck.objects.values_list("id", flat=True)[CHECKS_KEPT:]
    ConsistencyCheck.objects.filter(id__in=list(stale)).delete()
    return check


def consistency_check_latest() -> tuple[ConsistencyCheck | None, ConsistencyReport | None]:
    check = ConsistencyCheck.objects.first()
    if check is None or check.report is None:
        return check, None
    return check, report_from_json(check.report)
