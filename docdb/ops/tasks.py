"""The consistency check (beat, or the operations page) and repair, done by the worker."""

from celery import Task

from docdb.celery import app
from docdb.documents.models import RunKind, RunState
from docdb.documents.runs import RunOutcome, pipeline_run_tracked
from docdb.ops.reconcile import consistency_check, consistency_check_record, consistency_repair


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
@pipeline_run_tracked(RunKind.REPAIR)
def consistency_repair_task(self: Task) -> RunOutcome:
    report = consistency_check()
    done, failed = consistency_repair(report)
    summary = f"{len(done)} repaired" + (f", {len(failed)} impossible" if failed else "")
    # The operations page shows the state after the repair.
    consistency_check_record()
    if failed:
        return RunOutcome(RunState.FAILED, summary=summary, error="\n".join(failed))
    return RunOutcome(RunState.SUCCEEDED, summary=summary if done else "Nothing to repair.")


@app.task
def consistency_check_task() -> str:
    check = consistency_check_record()
    return check.error or f"checked in {check.seconds:.2f}s"
