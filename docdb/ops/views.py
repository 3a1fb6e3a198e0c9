"""The operations page: is every service up, is work moving, do the three stores agree."""

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from docdb.documents.models import PipelineRun, RunKind
from docdb.documents.runs import pipeline_run_enqueue
from docdb.ops.health import pipeline_summary, services_health
from docdb.ops.reconcile import consistency_check
from docdb.ops.tasks import consistency_repair_task
from docdb.weaviate_store import WeaviateUnavailable


@require_GET
@staff_member_required
def operations(request: HttpRequest) -> HttpResponse:
    services = services_health()
    report, report_error = None, "The consistency check needs Weaviate, which is down."
    if next(service for service in services if service.name == "Weaviate").ok:
        try:
            report, report_error = consistency_check(), ""
        except WeaviateUnavailable as exc:
            report_error = f"The consistency check needs Weaviate: {exc}"
    return render(
        request,
        "ops/operations.html",
        {
            **admin.site.each_context(request),
            "title": "Operations",
            "services": services,
            "pipeline": pipeline_summary(),
            "report": report,
            "report_error": report_error,
            "repairs": PipelineRun.objects.filter(kind=RunKind.REPAIR)[:3],
        },
    )


@require_POST
@staff_member_required
def operations_repair(request: HttpRequest) -> HttpResponse:
    with transaction.atomic():
        run = pipeline_run_enqueue(consistency_repair_task, kind=RunKind.REPAIR)
    messages.success(
        request, f"Repair queued (run {run.task_id}); this page shows its result when it is done."
    )
    return redirect("ops:operations")
