"""Who gets the next turn of work: fair shares between people, documents finished in order.

Documents are processed in turns of one page range. The broker carries no document ids: each
`document_turn_task` message is a token that asks this module for the fairest turn at the
moment it runs, so no message can be lost for a particular document, and a document that
waits behind others is never mistaken for one whose task was lost.

- Between people: the person whose documents had a turn least recently goes first (round
  robin by owner), so one person's import of a thousand files delays another's upload by one
  range at most.
- For one person: a started document goes on before the next one starts, and documents start
  in upload order.
- A turn holds its document: `holder` names the task, and a thread refreshes `heartbeat_at`
  while the turn runs. A hold whose heartbeat stopped belongs to a worker that died; the next
  token takes the document over (and counts it: a file that kills its worker every time fails
  after DOCDB_PIPELINE_MAX_RESUMES).
- The sweeper (beat, apart from the workers) puts tokens on the queue when work can be claimed
  and the queue has none: after a flushed queue or a dead worker's lost message.
"""

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Max, Min, Q, QuerySet
from django.utils import timezone

from docdb.documents.ingestion import document_fail
from docdb.documents.models import UNFINISHED, Document

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    document_id: uuid.UUID
    holder: str
    # The hold was taken over from a worker that died during its turn.
    taken_over: bool = False


def _hold_expired_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.PIPELINE_HOLD_SECONDS)


def hold_alive(document: Document, now: datetime) -> bool:
    """A live worker holds the document: the row-by-row twin of `documents_held`."""
    if not document.holder or document.heartbeat_at is None:
        return False
    return document.heartbeat_at >= _hold_expired_before(now)


def documents_claimable(now: datetime | None = None) -> QuerySet[Document]:
    """Unfinished documents that nobody holds (or whose holder died), not backing off."""
    now = now or timezone.now()
    return Document.objects.filter(status__in=UNFINISHED).filter(
        (Q(holder="") | Q(heartbeat_at__lt=_hold_expired_before(now)))
        & (Q(retry_at__isnull=True) | Q(retry_at__lte=now))
    )


def documents_held(now: datetime | None = None) -> QuerySet[Document]:
    """Documents a live worker works on right now."""
    now = now or timezone.now()
    return Document.objects.filter(
        status__in=UNFINISHED, heartbeat_at__gte=_hold_expired_before(now)
    ).exclude(holder="")


def _owner_next(claimable: QuerySet[Document]) -> int | None:
    """The person served least recently (never served first), then who waited longest."""
    waiting = dict(claimable.values_list("owner_id").annotate(oldest=Min("created_at")).order_by())
    if not waiting:
        return None
    served = dict(
        Document.objects.filter(owner_id__in=waiting, turn_at__isnull=False)
        .values_list("owner_id")
        .annotate(last=Max("turn_at"))
        .order_by()
    )
    never = timezone.now() - timedelta(days=365 * 100)
    return min(waiting, key=lambda owner: (served.get(owner, never), waiting[owner], owner))


def _document_next(claimable: QuerySet[Document], owner_id: int) -> Document | None:
    # Started documents first (oldest start first), then upload order.
    return (
        claimable.filter(owner_id=owner_id)
        .order_by(F("started_at").asc(nulls_last=True), "created_at", "id")
        .first()
    )


def _hold_take(document: Document, *, holder: str, now: datetime) -> bool:
    """Claim the hold with a conditional update: of two workers, exactly one wins."""
    fields: dict[str, object] = {"holder": holder, "heartbeat_at": now, "turn_at": now}
    if document.holder:
        fields["resume_count"] = F("resume_count") + 1
    claimed = Document.objects.filter(
        id=document.id,
        status=document.status,
        holder=document.holder,
        heartbeat_at=document.heartbeat_at,
    ).update(**fields)
    return claimed == 1


def turn_claim(*, holder: str) -> Turn | None:
    """Hold the document whose turn it is, or None when no work can be claimed."""
    # Another worker can win the race for the same document; then look again.
    for _ in range(8):
        now = timezone.now()
        claimable = documents_claimable(now)
        owner_id = _owner_next(claimable)
        if owner_id is None:
            return None
        document = _document_next(claimable, owner_id)
        if document is None or not _hold_take(document, holder=holder, now=now):
            continue
        turn = Turn(document_id=document.id, holder=holder, taken_over=bool(document.holder))
        if turn.taken_over and not _taken_over_allowed(document, turn):
            continue
        return turn
    return None


def _taken_over_allowed(document: Document, turn: Turn) -> bool:
    logger.warning(
        "document %s: its worker %s stopped during a turn (heartbeat %s); taking it over",
        document.id,
        document.holder,
        document.heartbeat_at,
    )
    lost = document.resume_count + 1
    if lost <= settings.PIPELINE_MAX_RESUMES:
        return True
    document_fail(
        document_id=document.id,
        reason=f"The worker stopped {lost} times while processing this document. It may run "
        "out of memory or time on this file; retry it, or split the PDF.",
    )
    hold_release(turn)
    return False


def document_hold_take(*, document_id: uuid.UUID, holder: str) -> Turn | None:
    """Hold one given document, outside the fair order (management commands, tests)."""
    document = documents_claimable().filter(id=document_id).first()
    if document is None or not _hold_take(document, holder=holder, now=timezone.now()):
        return None
    return Turn(document_id=document_id, holder=holder, taken_over=bool(document.holder))


def hold_release(turn: Turn, *, work_seconds: float = 0.0) -> None:
    Document.objects.filter(id=turn.document_id, holder=turn.holder).update(
        holder="", heartbeat_at=None, work_seconds=F("work_seconds") + work_seconds
    )


def turn_postpone(turn: Turn, *, reason: str) -> int | None:
    """After a transient error: back off exponentially, a bounded number of times, then fail.
    Returns the seconds until the document may have its next turn (None: it failed)."""
    document = Document.objects.filter(id=turn.document_id, holder=turn.holder).first()
    if document is None:
        return None
    if document.retries >= settings.PIPELINE_RETRY_LIMIT:
        document_fail(
            document_id=document.id,
            reason="The search index could not take the pages after "
            f"{settings.PIPELINE_RETRY_LIMIT + 1} attempts: {reason}",
        )
        return None
    delay = settings.PIPELINE_RETRY_BASE_SECONDS * 2**document.retries
    Document.objects.filter(id=document.id, holder=turn.holder).update(
        retries=F("retries") + 1, retry_at=timezone.now() + timedelta(seconds=delay)
    )
    logger.warning(
        "document %s: %s; next try in %ds (retry %d)", document.id, reason, delay, document.retries
    )
    return delay


@contextmanager
def hold_kept(turn: Turn) -> Iterator[None]:
    """Refresh the hold's heartbeat from a thread while the turn runs, so that a turn of any
    length is never taken for a dead worker's, and a dead worker's is noticed quickly."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.PIPELINE_HEARTBEAT_SECONDS):
                Document.objects.filter(id=turn.document_id, holder=turn.holder).update(
                    heartbeat_at=timezone.now()
                )
        except Exception:
            logger.exception("document %s: heartbeat failed", turn.document_id)
        finally:
            connection.close()  # the thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{turn.document_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def turns_waiting() -> int:
    """How many documents could start a turn right now."""
    return documents_claimable().count()


def hold_clear(*, document_id: uuid.UUID) -> None:
    """Forget the hold and back-off of a document that leaves the pipeline (retry, cancel)."""
    Document.objects.filter(id=document_id).update(
        holder="", heartbeat_at=None, retry_at=None, retries=0
    )
