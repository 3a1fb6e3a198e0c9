"""What a person watching their documents wants to know: what each one is doing right now,
why it waits, when it will be done, and whether any worker is there to do the work at all.

One function, `documents_progress`, answers for every page that shows a document (the list,
the document page, the upload page, the API), so they all say the same thing.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models import Count, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from docdb.documents.libraries import libraries_with_role
from docdb.documents.models import UNFINISHED, DamagedPage, Document, Role, Status
from docdb.documents.scheduler import documents_held, hold_alive

logger = logging.getLogger(__name__)

_WORKERS_CACHE_KEY = "docdb:workers-alive"
# A ping with no worker to answer waits a full second: ask at most this often.
WORKERS_CACHE_SECONDS = 5
_PING_TIMEOUT_SECONDS = 1.0
# The page rate comes from the documents worked on most recently.
_RATE_DOCUMENTS = 50


class Phase:
    """What a document does right now. `Status` is its lifecycle; a processing document is
    only *working* while a worker holds it, and *waiting* for its next turn in between."""

    QUEUED = "queued"
    WAITING = "waiting"
    RETRYING = "retrying"
    WORKING = "processing"


_PHASE_LABELS = {
    Phase.QUEUED: "Queued",
    Phase.WAITING: "Waiting",
    Phase.RETRYING: "Retrying soon",
    Phase.WORKING: "Processing",
}


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


def seconds_per_page() -> float | None:
    """Measured seconds of work per page over the recently worked documents (None before any
    page was done): the rate of this deployment's workers, whatever the model and hardware."""
    recent = (
        Document.objects.filter(work_seconds__gt=0, pages_done__gt=0)
        .order_by("-turn_at")
        .values_list("id", flat=True)[:_RATE_DOCUMENTS]
    )
    totals = Document.objects.filter(id__in=list(recent)).aggregate(
        seconds=Sum("work_seconds"), pages=Sum("pages_done")
    )
    if not totals["pages"]:
        return None
    return float(totals["seconds"] or 0) / totals["pages"] or None


@dataclass(frozen=True)
class _Pipeline:
    """The state of the whole pipeline that every estimate needs, read once per request."""

    now: datetime
    seconds_per_page: float | None
    # People with unfinished documents: the workers' time is shared between them.
    people: int
    # Documents a worker holds right now: at least one worker's worth of speed.
    working: int
    # Pages a document of unknown length is expected to have.
    typical_pages: float

    @property
    def share(self) -> float:
        """How much longer one person's work takes than the workers' raw speed."""
        return max(1, self.people) / max(1, self.working)


def _pipeline_read() -> _Pipeline:
    unfinished = Document.objects.filter(status__in=UNFINISHED)
    known = Document.objects.filter(pages_total__gt=0).aggregate(
        pages=Sum("pages_total"), documents=Count("id")
    )
    return _Pipeline(
        now=timezone.now(),
        seconds_per_page=seconds_per_page(),
        people=unfinished.values("owner_id").distinct().count(),
        working=documents_held().count(),
        typical_pages=(known["pages"] / known["documents"]) if known["documents"] else 10.0,
    )


def _phase(document: Document, now: datetime) -> str:
    if document.status not in UNFINISHED:
        return str(document.status)
    if hold_alive(document, now):
        return Phase.WORKING
    if document.retry_at is not None and document.retry_at > now:
        return Phase.RETRYING
    return Phase.WAITING if document.status == Status.PROCESSING else Phase.QUEUED


def phase_label(document: Document) -> str:
    """What the document does right now, in a word (the admin's list shows it)."""
    phase = _phase(document, timezone.now())
    return _PHASE_LABELS.get(phase, document.get_status_display())


def _pages_left(document: Document, pipeline: _Pipeline) -> float:
    total = document.pages_total or pipeline.typical_pages
    return max(0.0, total - document.pages_done)


def _eta(document: Document, pages: float, pipeline: _Pipeline) -> int | None:
    """Seconds until `pages` pages are done at the measured rate, shared as the workers are.
    Time into the current turn counts down, so the estimate never grows while nothing moves."""
    rate = pipeline.seconds_per_page
    if document.pages_done and document.work_seconds:
        rate = document.work_seconds / document.pages_done
    if rate is None:
        return None
    seconds = pages * rate * pipeline.share
    if hold_alive(document, pipeline.now) and document.turn_at:
        seconds -= (pipeline.now - document.turn_at).total_seconds()
    return max(0, round(seconds))


def _owner_order(owner_id: int) -> list[Document]:
    """The person's unfinished documents in the order the scheduler takes them."""
    return sorted(
        Document.objects.filter(owner_id=owner_id, status__in=UNFINISHED),
        key=lambda d: (d.started_at is None, d.started_at or d.created_at, d.created_at, d.id),
    )


def _waiting_reason(ahead: int, phase: str, pipeline: _Pipeline, *, yours: bool) -> str:
    # Turns go to uploaders: a document someone else put in a shared library waits behind
    # that person's uploads, not the viewer's.
    if phase == Phase.RETRYING:
        return "the search index or the embedder was away; trying again shortly"
    if ahead:
        whose = "your documents" if yours else "the documents of the person who uploaded it"
        return f"waiting behind {ahead} of {whose}"
    others = pipeline.people - 1
    if phase == Phase.WAITING and others > 0:
        return f"waiting for its next turn: workers take turns between {pipeline.people} people"
    if others > 0:
        whom = "you" if yours else "its uploader"
        return f"next for {whom}; workers take turns between {pipeline.people} people"
    return "next in line"


def _progress(
    document: Document,
    order: Sequence[Document],
    pipeline: _Pipeline,
    *,
    yours: bool = True,
    can_change: bool = True,
) -> dict[str, Any]:
    phase = _phase(document, pipeline.now)
    body: dict[str, Any] = {
        "id": str(document.id),
        "title": document.title,
        "status": document.status,
        "phase": phase,
        "status_label": _PHASE_LABELS.get(phase, document.get_status_display()),
        "pages_total": document.pages_total,
        "pages_done": document.pages_done,
        "progress": document.progress_percent,
        "queue_position": None,
        "waiting_behind": 0,
        "eta_seconds": None,
        "detail": "",
        "error": document.error,
        "error_code": document.error_code,
        # Pages no engine could render; the document is ready without them.
        "damaged_pages": [],
        # Whether the reader may cancel, retry or unlock it (an editor of its library).
        "can_change": can_change,
        "can_retry": document.can_retry,
        "needs_password": document.needs_password,
        "url": reverse("documents:detail", args=[document.id]),
        "retry_url": reverse("documents:retry", args=[document.id]),
        "unlock_url": reverse("documents:unlock", args=[document.id]),
        "cancel_url": reverse("documents:cancel", args=[document.id]),
        "thumbnail_url": reverse("documents:page_thumbnail", args=[document.id, 1])
        if document.pages_done
        else "",
    }
    if document.status not in UNFINISHED:
        return body
    ids = [d.id for d in order]
    position = ids.index(document.id) if document.id in ids else 0
    pages = sum(_pages_left(d, pipeline) for d in order[: position + 1])
    body["queue_position"] = position + 1
    body["waiting_behind"] = position
    body["eta_seconds"] = _eta(document, pages, pipeline)
    if phase != Phase.WORKING:
        body["detail"] = _waiting_reason(position, phase, pipeline, yours=yours)
    return body


def documents_progress(
    documents: Sequence[Document], *, viewer: User | None = None
) -> dict[Any, dict[str, Any]]:
    """Each document's state as every page shows it (JSON-ready), by id. Queue places and
    waits count only the uploader's own documents: nobody learns of others' work but that the
    workers are shared. `viewer`: who reads it, told when the uploader is someone else."""
    pipeline = _pipeline_read()
    orders: dict[int, list[Document]] = {}
    damaged = _damaged_pages([d.id for d in documents if d.status == Status.READY])
    editable = (
        None
        if viewer is None
        else set(libraries_with_role(user=viewer, role=Role.EDITOR).values_list("id", flat=True))
    )
    result = {}
    for document in documents:
        if document.status in UNFINISHED and document.owner_id not in orders:
            orders[document.owner_id] = _owner_order(document.owner_id)
        order = orders.get(document.owner_id, [])
        # The owner's list was read just now: its copy of the document is the freshest.
        current = next((d for d in order if d.id == document.id), document)
        yours = viewer is None or viewer.pk == document.owner_id
        can_change = editable is None or document.library_id in editable
        body = _progress(current, order, pipeline, yours=yours, can_change=can_change)
        if body["status"] == Status.READY and document.id in damaged:
            body["damaged_pages"] = damaged[document.id]
            body["thumbnail_url"] = _first_page_thumbnail(document.id, damaged[document.id])
        body["status_html"] = render_to_string("documents/_status.html", {"p": body})
        result[document.id] = body
    return result


def _damaged_pages(document_ids: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """The damaged pages of these documents, by document, in page order (one query)."""
    pages: dict[Any, list[dict[str, Any]]] = {}
    rows = DamagedPage.objects.filter(document_id__in=document_ids).order_by("document", "number")
    for row in rows:
        pages.setdefault(row.document_id, []).append({"number": row.number, "reason": row.reason})
    return pages


def _first_page_thumbnail(document_id: Any, damaged: list[dict[str, Any]]) -> str:
    """The thumbnail of the document's first page that is not damaged ("" when none is)."""
    numbers = {page["number"] for page in damaged}
    first = next(n for n in range(1, len(numbers) + 2) if n not in numbers)
    return reverse("documents:page_thumbnail", args=[document_id, first])


def document_progress(document: Document, *, viewer: User | None = None) -> dict[str, Any]:
    return documents_progress([document], viewer=viewer)[document.id]


def documents_by_phase() -> dict[str, int]:
    """How many documents are in each phase, by label, as the documents pages show them."""
    now = timezone.now()
    counts = {label: 0 for label in _PHASE_LABELS.values()}
    unfinished = Document.objects.filter(status__in=UNFINISHED).only(
        "status", "holder", "heartbeat_at", "retry_at"
    )
    for document in unfinished:
        counts[_PHASE_LABELS[_phase(document, now)]] += 1
    finished = dict(
        Document.objects.exclude(status__in=UNFINISHED)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for value, label in Status.choices:
        if value not in UNFINISHED:
            counts[label] = finished.get(value, 0)
    return counts
