"""Celery tasks: thin wrappers that ask the scheduler for work, call one service and decide
about retries.

`document_turn_task` carries no document: it is a token that takes the turn the scheduler
gives it (docdb/documents/scheduler.py), one page range of one document, and puts a token back
while work is left. Tokens go to the `ingest` queue; the sweeper to `control`, which workers
read first, and beat runs it once per deployment, apart from the workers. A re-import (stored
page images into Weaviate, no rendering) is one task, one run.
"""

import logging
import time
import uuid

from celery import Task
from celery.signals import worker_ready
from django.conf import settings

from docdb import pdf
from docdb.celery import INGEST_QUEUE, app, queue_length
from docdb.documents import ingestion, scheduler
from docdb.documents.checks import ocr_check
from docdb.documents.models import RunKind, RunState
from docdb.documents.reimport import document_reimport
from docdb.documents.runs import (
    RunOutcome,
    pipeline_run_started,
    pipeline_run_tracked,
    pipeline_runs_settle,
)
from docdb.weaviate_store import WeaviateImportError, WeaviateUnavailable

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (WeaviateUnavailable, WeaviateImportError)


@worker_ready.connect
def _worker_start_check(**kwargs: object) -> None:
    """Say in the worker's log, as it starts, what its machine lacks to read scanned pages (the
    web process says it at `migrate`, and on the operations page)."""
    for message in ocr_check():
        logger.error("%s %s", message.msg, message.hint)


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
def document_turn_task(self: Task) -> str:
    """Take the next turn of work, if there is one, and leave a token for the turn after."""
    holder = f"{self.request.hostname or 'worker'}/{self.request.id}"
    turn = scheduler.turn_claim(holder=holder)
    if turn is None:
        return "nothing to do"
    pipeline_run_started(
        document_id=turn.document_id,
        worker=self.request.hostname or "",
        taken_over=turn.taken_over,
    )
    started = time.monotonic()
    outcome, retry_in = "succeeded", None
    try:
        with scheduler.hold_kept(turn):
            ingestion.document_turn_run(document_id=turn.document_id, holder=holder)
    except TRANSIENT_ERRORS as exc:
        retry_in = scheduler.turn_postpone(turn, reason=str(exc))
        outcome = "postponed" if retry_in is not None else "failed"
    except pdf.PdfError as exc:
        ingestion.document_fail(document_id=turn.document_id, reason=exc.reason, code=exc.code)
        outcome = "failed"
    except Exception as exc:
        logger.exception("document %s: turn failed", turn.document_id)
        ingestion.document_fail(
            document_id=turn.document_id,
            reason=f"Processing stopped on an unexpected error: {exc}",
        )
        outcome = "failed"
    finally:
        scheduler.hold_release(turn, work_seconds=time.monotonic() - started)
    pipeline_runs_settle(document_id=turn.document_id)
    logger.info(
        "document %s task %s step turn %s in %.2fs",
        turn.document_id,
        self.request.id,
        outcome,
        time.monotonic() - started,
    )
    if retry_in is not None:
        document_turn_task.apply_async(countdown=retry_in)
    if scheduler.turns_waiting():
        document_turn_task.delay()
    return outcome


@app.task
def pipeline_sweep_task() -> int:
    """Put tokens on the queue when work can be claimed and none waits there (the queue was
    lost, or a worker died holding the only token); close runs whose document finished.
    Returns how many tokens it added."""
    pipeline_runs_settle()
    waiting = scheduler.turns_waiting()
    if not waiting or queue_length(INGEST_QUEUE) > 0:
        return 0
    tokens = min(waiting, settings.PIPELINE_SWEEP_TOKENS)
    logger.warning(
        "%d documents can be worked on and no token is queued; adding %d", waiting, tokens
    )
    for _ in range(tokens):
        document_turn_task.delay()
    return tokens


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
@pipeline_run_tracked(RunKind.REIMPORT)
def document_reimport_task(self: Task, document_id: str) -> RunOutcome:
    try:
        imported = document_reimport(document_id=uuid.UUID(document_id))
    except TRANSIENT_ERRORS as exc:
        # Weaviate or the embedder away: the pipeline's backoff, then the run fails with it.
        if self.request.retries >= settings.PIPELINE_RETRY_LIMIT:
            raise
        countdown = settings.PIPELINE_RETRY_BASE_SECONDS * 2**self.request.retries
        raise self.retry(exc=exc, countdown=countdown) from exc
    if not imported:
        return RunOutcome(RunState.SKIPPED, summary="The document is not ready (or is gone).")
    return RunOutcome(RunState.SUCCEEDED, summary=f"{imported} pages re-imported.")
