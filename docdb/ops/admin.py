from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from docdb.documents.admin import badge, duration_text
from docdb.ops.models import PipelineRun, RunKind, RunState

admin.site.site_header = "DocDB administration"
admin.site.site_title = "DocDB admin"
admin.site.index_title = "Documents, pages, pipeline runs and API tokens"

_STATE_COLOURS = {
    RunState.QUEUED: "#5f6b7a",
    RunState.RUNNING: "#0b5cad",
    RunState.RETRYING: "#8a5300",
    RunState.SUCCEEDED: "#1b7f3b",
    RunState.FAILED: "#b3261e",
    RunState.SKIPPED: "#5f6b7a",
}


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the pipeline. Old ones may be deleted."""

    list_display = (
        "task",
        "kind",
        "document_link",
        "state_badge",
        "queued",
        "run_duration",
        "attempts",
        "error_short",
    )
    list_filter = ("state", "kind", "queued_at")
    search_fields = ("=task_id", "=document__id", "document__title", "error")
    list_select_related = ("document",)
    date_hierarchy = "queued_at"
    fields = (
        "task_id",
        "kind",
        "document_link",
        "state_badge",
        "queued_at",
        "started_at",
        "finished_at",
        "run_duration",
        "attempts",
        "worker",
        "summary",
        "error_full",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="task", ordering="task_id")
    def task(self, run: PipelineRun) -> SafeString:
        # The first 8 characters tell runs apart and are what `grep` needs in the worker log.
        return format_html('<span title="{}">{}…</span>', run.task_id, run.task_id[:8])

    @admin.display(description="document", ordering="document__title")
    def document_link(self, run: PipelineRun) -> SafeString | str:
        if run.document is None:
            return "—" if run.kind == RunKind.REPAIR else "(deleted)"
        url = reverse("admin:documents_document_change", args=[run.document.pk])
        return format_html('<a href="{}">{}</a>', url, run.document.title)

    @admin.display(description="state", ordering="state")
    def state_badge(self, run: PipelineRun) -> SafeString:
        return badge(run.get_state_display(), _STATE_COLOURS[RunState(run.state)])

    @admin.display(description="queued at", ordering="queued_at")
    def queued(self, run: PipelineRun) -> str:
        return date_format(localtime(run.queued_at), "Y-m-d H:i:s")

    @admin.display(description="duration")
    def run_duration(self, run: PipelineRun) -> str:
        text = duration_text(run.duration)
        return text if run.finished_at or run.started_at is None else f"{text} so far"

    @admin.display(description="error")
    def error_short(self, run: PipelineRun) -> str:
        return run.error if len(run.error) <= 80 else run.error[:79] + "…"

    @admin.display(description="error")
    def error_full(self, run: PipelineRun) -> SafeString | str:
        if not run.error:
            return "—"
        return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', run.error)
