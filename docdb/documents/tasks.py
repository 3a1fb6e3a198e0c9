import logging
import time
import uuid

from celery import Task
from django.db import transaction

from docdb.celery import app
from docdb.documents import services
from docdb.documents.models import Document
from docdb.weaviate_store import WeaviateImportError, WeaviateUnavailable

logger = logging.getLogger(__name__)

# Weaviate or the embedder being away for a while is normal (restarts, model loading); waiting
# 10 s, 20 s, 40 s … up to ~10 minutes in all covers that, then the document fails clearly.
RETRY_LIMIT = 6
RETRY_BASE_SECONDS = 10


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=RETRY_LIMIT)
def document_process_task(self: Task, document_id: str) -> None:
    started = time.monotonic()
    doc_id = uuid.UUID(document_id)
    if not Document.objects.filter(id=doc_id).exists():
        logger.info("document %s is gone; task %s has nothing to do", doc_id, self.request.id)
        return
    try:
        services.document_ingest(document_id=doc_id)
    except (WeaviateUnavailable, WeaviateImportError) as exc:
        if self.request.retries >= RETRY_LIMIT:
            services.document_fail(
                document_id=doc_id,
                reason=f"The search index could not take the pages after "
                f"{RETRY_LIMIT + 1} attempts: {exc}",
            )
            return
        countdown = RETRY_BASE_SECONDS * 2**self.request.retries
        logger.warning(
            "document %s task %s: %s; retrying in %ds", doc_id, self.request.id, exc, countdown
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:
        logger.exception("document %s task %s failed", doc_id, self.request.id)
        with transaction.atomic():
            services.document_fail(
                document_id=doc_id, reason=f"Processing stopped on an unexpected error: {exc}"
            )
        return
    logger.info(
        "document %s task %s finished in %.1fs",
        doc_id,
        self.request.id,
        time.monotonic() - started,
    )
