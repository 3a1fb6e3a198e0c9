"""Pipeline runs: the row is written when work is queued, and every task of the run updates it.

`pipeline_run_enqueue` creates the row inside the caller's transaction (so queued work shows up
the moment it is committed) and publishes the task with the row's task id after the commit.
`pipeline_run_tracked` wraps a task: it marks the run running, counts attempts, and records how
it ended, with the error. Nothing here imports the document services, which queue through it.
"""

import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from celery import Task
from celery.exceptions import Retry
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from docdb.documents.models import (
    RUN_UNFINISHED,
    Document,
    PipelineRun,
    RunKind,
    RunState,
    Status,
)

logger = logging.getLogger(__name__)

TaskFunction = TypeVar("TaskFunction", bound=Callable[..., Any])


@dataclass(frozen=True)
class RunOutcome:
    """What a tracked task returns when it knows how its run ended (instead of the document
    state telling it)."""

    state: RunState
    summary: str = ""
    error: str = ""


def pipeline_run_enqueue(
    task: Task,
    *,
    kind: RunKind,
    document_id: uuid.UUID | None = None,
    args: list[Any] | None = None,
) -> PipelineRun:
    """Record a queued run and publish `task` once the surrounding transaction commits."""
    task_id = str(uuid.uuid4())
    run = PipelineRun.objects.create(task_id=task_id, kind=kind, document_id=document_id)
    task_args = args if args is not None else ([str(document_id)] if document_id else [])
    transaction.on_commit(lambda: task.apply_async(args=task_args, task_id=task_id))
    return run


def _run_for_task(task: Task, kind: RunKind, document_id: uuid.UUID | None) -> PipelineRun:
    """The task's own run; for the later tasks of a chain, the document's unfinished run; and
    for a task published by other code (the sweeper), a new row."""
    run = PipelineRun.objects.filter(task_id=task.request.id).first()
    if run is None and document_id is not None:
        run = (
            PipelineRun.objects.filter(document_id=document_id, kind=kind, state__in=RUN_UNFINISHED)
            .order_by("-queued_at")
            .first()
        )
    if run is None:
        exists = document_id is not None and Document.objects.filter(id=document_id).exists()
        document = document_id if exists else None
        run, _ = PipelineRun.objects.get_or_create(
            task_id=task.request.id, defaults={"kind": kind, "document_id": document}
        )
    return run


def _run_start(task: Task, kind: RunKind, document_id: uuid.UUID | None) -> int:
    run = _run_for_task(task, kind, document_id)
    delivery = task.request.delivery_info or {}
    # A retry or a redelivery (worker lost) is another attempt; the next range of a chain is not.
    again = task.request.retries > 0 or bool(delivery.get("redelivered"))
    PipelineRun.objects.filter(id=run.id).update(
        state=RunState.RUNNING,
        started_at=run.started_at or timezone.now(),
        attempts=F("attempts") + 1 if (again or run.attempts == 0) else F("attempts"),
        worker=task.request.hostname or "",
    )
    return run.id


def _run_finish(run_id: int, outcome: RunOutcome) -> None:
    PipelineRun.objects.filter(id=run_id).update(
        state=outcome.state,
        finished_at=timezone.now(),
        summary=outcome.summary[:500],
        error=outcome.error,
    )


def _outcome_from_document(document_id: uuid.UUID | None) -> RunOutcome | None:
    """How a document task's run stands once the task returned; None while the run goes on
    (a chain has queued its next range)."""
    document = Document.objects.filter(id=document_id).first() if document_id else None
    if document is None:
        return RunOutcome(RunState.SKIPPED, summary="The document was deleted.")
    if document.status == Status.READY:
        return RunOutcome(RunState.SUCCEEDED, summary=f"{document.pages_total} pages indexed.")
    if document.status == Status.FAILED:
        return RunOutcome(RunState.FAILED, error=document.error)
    if document.status == Status.CANCELLED:
        return RunOutcome(RunState.SKIPPED, summary="Cancelled.")
    return None


def _run_log(run_id: int, task: Task, document_id: uuid.UUID | None, started: float) -> None:
    run = PipelineRun.objects.get(id=run_id)
    log = logger.warning if run.state == RunState.FAILED else logger.info
    log(
        "document %s task %s step %s %s in %.2fs (%s run %s, attempt %d)%s",
        document_id or "-",
        task.request.id,
        task.name.rsplit(".", 1)[-1],
        run.state if run.is_finished else "done",
        time.monotonic() - started,
        run.kind,
        run.task_id,
        run.attempts,
        f": {run.error}" if run.error else "",
    )


def pipeline_run_tracked(kind: RunKind) -> Callable[[TaskFunction], TaskFunction]:
    """Decorate a bound task whose first argument (if any) is a document id."""

    def decorate(fun: TaskFunction) -> TaskFunction:
        @functools.wraps(fun)
        def tracked(task: Task, *args: Any, **kwargs: Any) -> Any:
            document_id = uuid.UUID(str(args[0])) if args else None
            started = time.monotonic()
            run_id = _run_start(task, kind, document_id)
            try:
                result = fun(task, *args, **kwargs)
            except Retry as exc:
                PipelineRun.objects.filter(id=run_id).update(
                    state=RunState.RETRYING, error=str(exc.exc or exc)
                )
                _run_log(run_id, task, document_id, started)
                raise
            except Exception as exc:
                _run_finish(run_id, RunOutcome(RunState.FAILED, error=f"{exc}"))
                _run_log(run_id, task, document_id, started)
                raise
            outcome = result if isinstance(result, RunOutcome) else None
            if outcome is None and document_id is not None:
                outcome = _outcome_from_document(document_id)
            if outcome is not None:
                _run_finish(run_id, outcome)
            _run_log(run_id, task, document_id, started)
            return result

        return cast(TaskFunction, tracked)

    return decorate


def pipeline_run_started(*, document_id: uuid.UUID, worker: str, taken_over: bool) -> None:
    """A document's processing run runs from its first turn on; taking it over from a dead
    worker is another attempt. Its turns are carried by tokens (docdb/documents/scheduler.py),
    none of which is the run's own task."""
    runs = PipelineRun.objects.filter(document_id=document_id, kind=RunKind.PROCESS)
    runs.filter(state=RunState.QUEUED).update(
        state=RunState.RUNNING, started_at=timezone.now(), attempts=1, worker=worker
    )
    if taken_over:
        runs.filter(state=RunState.RUNNING).update(attempts=F("attempts") + 1, worker=worker)


def pipeline_runs_settle(*, document_id: uuid.UUID | None = None) -> int:
    """Close runs whose document finished, was cancelled or vanished (of one document, or
    all). Returns how many were closed."""
    closed = 0
    stale = PipelineRun.objects.filter(state__in=RUN_UNFINISHED).filter(
        Q(document__isnull=True, kind__in=[RunKind.PROCESS, RunKind.REIMPORT])
        | Q(
            document__status__in=[Status.READY, Status.FAILED, Status.CANCELLED],
            kind=RunKind.PROCESS,
        )
    )
    if document_id is not None:
        stale = stale.filter(document_id=document_id)
    for run in stale.select_related("document"):
        outcome = _outcome_from_document(run.document_id)
        if outcome is not None:
            closed += PipelineRun.objects.filter(id=run.id, state__in=RUN_UNFINISHED).update(
                state=outcome.state,
                finished_at=timezone.now(),
                summary=outcome.summary,
                error=outcome.error,
            )
    return closed
