"""Celery tasks: thin wrappers that load by id, call one service and decide about retries.

A document is processed as a chain of short tasks, one page range each, so a worker that dies
loses at most one range, and Redis can hand a lost task out again after a short visibility
timeout without ever duplicating a long one.
"""

import logging
import time
import uuid

from celery import Task
from django.conf import settings

from docdb import pdf
from docdb.celery import app
from docdb.documents import services
from docdb.documents.models import Status
from docdb.ops.models import RunKind
from docdb.ops.runs import pipeline_run_tracked
from docdb.weaviate_store import WeaviateImportError, WeaviateUnavailable

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (WeaviateUnavailable, WeaviateImportError)


def _retry_or_fail(task: Task, document_id: uuid.UUID, exc: Exception) -> None:
    """Weaviate or the embedder away for a while is normal (restarts, model loading): wait
    with exponential backoff, a bounded number of times, then fail with the reason."""
    if task.request.retries >= settings.PIPELINE_RETRY_LIMIT:
        services.document_fail(
            document_id=document_id,
            reason="The search index could not take the pages after "
            f"{settings.PIPELINE_RETRY_LIMIT + 1} attempts: {exc}",
        )
        return
    countdown = settings.PIPELINE_RETRY_BASE_SECONDS * 2**task.request.retries
    logger.warning(
        "document %s task %s: %s; retry %d in %ds",
        document_id,
        task.request.id,
        exc,
        task.request.retries + 1,
        countdown,
    )
    raise task.retry(exc=exc, countdown=countdown, max_retries=settings.PIPELINE_RETRY_LIMIT)


def _unexpected(task: Task, document_id: uuid.UUID, exc: Exception) -> None:
    logger.exception("document %s task %s failed", document_id, task.request.id)
    services.document_fail(
        document_id=document_id, reason=f"Processing stopped on an unexpected error: {exc}"
    )


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
@pipeline_run_tracked(RunKind.PROCESS)
def document_process_task(self: Task, document_id: str) -> None:
    """Start (or resume) a document: read its page count, then queue its first range."""
    doc_id = uuid.UUID(document_id)
    try:
        first = services.document_start(document_id=doc_id)
    except Exception as exc:
        _unexpected(self, doc_id, exc)
        return
    if first is not None:
        document_range_task.delay(document_id, first)


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
@pipeline_run_tracked(RunKind.PROCESS)
def document_range_task(self: Task, document_id: str, first: int) -> None:
    """Render, read and index one range of pages, then queue the next range."""
    started = time.monotonic()
    doc_id = uuid.UUID(document_id)
    # Set by the broker on a task handed out again because its worker died unacknowledged.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        next_first = services.document_range_ingest(
            document_id=doc_id, first=first, redelivered=redelivered
        )
    except TRANSIENT_ERRORS as exc:
        _retry_or_fail(self, doc_id, exc)
        return
    except pdf.PdfError as exc:
        services.document_fail(document_id=doc_id, reason=exc.reason)
        return
    except Exception as exc:
        _unexpected(self, doc_id, exc)
        return
    logger.info(
        "document %s task %s range from page %d done in %.2fs",
        doc_id,
        self.request.id,
        first,
        time.monotonic() - started,
    )
    if next_first is not None:
        document_range_task.delay(document_id, next_first)


@app.task
def documents_sweep_task() -> int:
    """Resume documents whose task was lost, and fail those that keep stalling."""
    resumed = 0
    for document in services.documents_stalled(older_than_seconds=settings.PIPELINE_STALL_SECONDS):
        if not services.document_resume_claim(
            document=document, max_resumes=settings.PIPELINE_MAX_RESUMES
        ):
            continue
        logger.warning(
            "document %s made no progress for %ds while %s; resuming it",
            document.id,
            settings.PIPELINE_STALL_SECONDS,
            document.status,
        )
        if document.status == Status.QUEUED:
            document_process_task.delay(str(document.id))
        else:
            document_range_task.delay(str(document.id), document.pages_done + 1)
        resumed += 1
    return resumed
