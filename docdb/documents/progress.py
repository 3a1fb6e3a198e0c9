"""What a person watching their uploads wants to know: place in the queue, time left, and
whether any worker is there to do the work at all (so nothing waits in silence).
"""

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from docdb.documents.models import Document, Status

logger = logging.getLogger(__name__)

_WORKERS_CACHE_KEY = "docdb:workers-alive"
# A ping with no worker to answer waits a full second: ask at most this often.
WORKERS_CACHE_SECONDS = 5
_PING_TIMEOUT_SECONDS = 1.0


def workers_alive() -> bool:
    """True when at least one Celery worker answers a ping (cached a few seconds)."""
    cached = cache.get(_WORKERS_CACHE_KEY)
    if cached is not None:
        return bool(cached)
    from docdb.celery import app as celery_app

    try:
        with celery_app.connection_for_write() as connection:
            # Fail in a moment when the broker is down, instead of the publisher's retries.
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=1)
            # One reply is enough, and returns at once instead of after the timeout.
            replies = celery_app.control.ping(
                timeout=_PING_TIMEOUT_SECONDS, connection=connection, limit=1
            )
        alive = bool(replies)
    except Exception as exc:
        # A broker that is down means no worker can get work either.
        logger.warning("Celery ping failed: %s", exc)
        alive = False
    cache.set(_WORKERS_CACHE_KEY, alive, WORKERS_CACHE_SECONDS)
    return alive


def workers_forget() -> None:
    """Drop the cached answer (a test that stops the worker wants to see it at once)."""
    cache.delete(_WORKERS_CACHE_KEY)


def queue_positions(documents: Iterable[Document]) -> dict[Any, int]:
    """1-based place in the queue of each queued document, among everyone's queued documents.

    Tasks are taken in the order they were queued; a queued row's updated_at is when it was
    queued (upload or retry), as nothing else touches it while it waits.
    """
    positions = {}
    for document in documents:
        if document.status == Status.QUEUED:
            ahead = Document.objects.filter(
                status=Status.QUEUED, updated_at__lt=document.updated_at
            ).count()
            positions[document.id] = ahead + 1
    return positions


def eta_seconds(document: Document, *, now: datetime | None = None) -> int | None:
    """Seconds left for a processing document at its pace so far; None before the first pages."""
    if document.status != Status.PROCESSING or not document.started_at:
        return None
    if not document.pages_done or not document.pages_total:
        return None
    elapsed = ((now or timezone.now()) - document.started_at).total_seconds()
    remaining = max(0, document.pages_total - document.pages_done)
    return round(elapsed / document.pages_done * remaining)


def document_progress(document: Document, *, queue_position: int | None = None) -> dict[str, Any]:
    """One document's state as the upload and documents pages show it (JSON-ready)."""
    return {
        "id": str(document.id),
        "title": document.title,
        "status": document.status,
        "status_label": document.get_status_display(),
        "pages_total": document.pages_total,
        "pages_done": document.pages_done,
        "progress": document.progress_percent,
        "queue_position": queue_position,
        "eta_seconds": eta_seconds(document),
        "error": document.error,
        "url": reverse("documents:detail", args=[document.id]),
        "retry_url": reverse("documents:retry", args=[document.id]),
        "thumbnail_url": reverse("documents:page_thumbnail", args=[document.id, 1])
        if document.pages_done
        else "",
    }
