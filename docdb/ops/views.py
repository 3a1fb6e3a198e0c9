"""The operations page: is every service up, is work moving, do the three stores agree."""

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from docdb.documents.models import PipelineRun, RunKind
from docdb.documents.runs import pipeline_run_enqueue
from docdb.ops.health import pipeline_summary, services_health
from docdb.ops.reconcile import consistency_check_latest
from docdb.ops.tasks import consistency_check_task, consistency_repair_task


@require_GET
@staff_member_required
def operations(request: HttpRequest) -> HttpResponse:
    check, report = consistency_check_latest()
    return render(
        request,
        "ops/operations.html",
        {
            **admin.site.each_context(request),
            "title": "Operations",
            "services": services_health(),
            "pipeline": pipeline_summary(),
            "check": check,
            "report": report,
            "report_error": check.error if check else "",
            "check_minutes": settings.CONSISTENCY_CHECK_MINUTES,
            "repairs": PipelineRun.objects.filter(kind=RunKind.REPAIR)[:3],
        },
    )


@require_POST
@staff_member_required
def operations_check(request: HttpRequest) -> HttpResponse:
    consistency_check_task.delay()
    messages.success(request, "Check queued; this page shows its result when it is done.")
    return redirect("ops:operations")


@require_POST
@staff_member_required
def operations_repair(request: HttpRequest) -> HttpResponse:
    with transaction.atomic():
        run = pipeline_run_enqueue(consistency_repair_task, kind=RunKind.REPAIR)
    # The run links to its admin page; its task id means nothing to a person.
    link = reverse("admin:documents_pipelinerun_change", args=[run.pk])
    messages.success(
        request,
        format_html(
            'Repair queued (<a href="{}">its run</a>); this page shows its result when it is done.',
            link,
        ),
    )
    return redirect("ops:operations")
