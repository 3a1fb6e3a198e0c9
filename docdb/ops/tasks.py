"""Operations work done by the worker: re-imports and consistency repairs, each one run."""

import uuid

from celery import Task

from docdb.celery import app
from docdb.documents.models import RunKind, RunState
from docdb.documents.runs import RunOutcome, pipeline_run_tracked
from docdb.ops.reconcile import consistency_check, consistency_repair
from docdb.ops.services import document_reimport


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
@pipeline_run_tracked(RunKind.REIMPORT)
def document_reimport_task(self: Task, document_id: str) -> RunOutcome:
    imported = document_reimport(document_id=uuid.UUID(document_id))
    if not imported:
        return RunOutcome(RunState.SKIPPED, summary="The document is not ready (or is gone).")
    return RunOutcome(RunState.SUCCEEDED, summary=f"{imported} pages re-imported.")


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
@pipeline_run_tracked(RunKind.REPAIR)
def consistency_repair_task(self: Task) -> RunOutcome:
    report = consistency_check()
    done, failed = consistency_repair(report)
    summary = f"{len(done)} repaired" + (f", {len(failed)} impossible" if failed else "")
    if failed:
        return RunOutcome(RunState.FAILED, summary=summary, error="\n".join(failed))
    return RunOutcome(RunState.SUCCEEDED, summary=summary if done else "Nothing to repair.")
