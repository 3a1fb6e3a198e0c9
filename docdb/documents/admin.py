"""The admin for documents, pages and pipeline runs: see where each one stands and act on it;
and Django's user admin, deleting people through `documents.people`.

Every action calls the same services as the rest of DocDB. Page images are served by a staff
view here (media is never served publicly, and the user-facing views only serve the owner).
"""

import copy
import uuid
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.forms.models import BaseInlineFormSet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from docdb.documents.files import file_open, page_thumbnail_name
from docdb.documents.models import (
    DamagedPage,
    Document,
    Library,
    Membership,
    Page,
    PipelineRun,
    Role,
    RunKind,
    RunState,
    Status,
    Tag,
)
from docdb.documents.people import (
    PersonDeletePlan,
    PersonNotDeleted,
    person_delete,
    person_delete_plan,
)
from docdb.documents.progress import phase_label
from docdb.documents.reimport import document_reimport_queue, index_rebuild
from docdb.documents.services import (
    document_cancel,
    document_delete,
    document_reindex,
    document_rename,
    document_retry,
)
from docdb.weaviate_store import WeaviateUnavailable, pages_count, server_describe

# The change page shows this many page thumbnails; the Page list has them all.
GALLERY_PAGES = 60

_STATUS_TONES = {
    Status.QUEUED: "grey",
    Status.PROCESSING: "blue",
    Status.READY: "green",
    Status.FAILED: "red",
    Status.CANCELLED: "grey",
}


def _thumbnail_url(document_id: uuid.UUID, number: int) -> str:
    return reverse("admin:documents_document_thumbnail", args=[document_id, number])


def _thumbnail(document_id: uuid.UUID, number: int, *, width: int = 48) -> SafeString:
    return format_html(
        '<img src="{}" alt="page {}" width="{}" loading="lazy" class="docdb-thumb">',
        _thumbnail_url(document_id, number),
        number,
        width,
    )


def duration_text(duration: timedelta | None) -> str:
    if duration is None:
        return "—"
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def badge(label: str, tone: str) -> SafeString:
    # Styled by static/docdb/admin.css: the Content-Security-Policy forbids style attributes.
    return format_html('<span class="docdb-badge docdb-badge-{}">{}</span>', tone, label)


class PipelineRunInline(admin.TabularInline):
    model = PipelineRun
    fields = ("task_id", "kind", "state", "queued_at", "run_duration", "attempts", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "Pipeline runs"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration")
    def run_duration(self, run: PipelineRun) -> str:
        return duration_text(run.duration)


class DamagedPageInline(admin.TabularInline):
    model = DamagedPage
    fields = ("number", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Damaged pages (no engine could render them; not searchable)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = (
        "first_page",
        "title",
        "library_and_owner",
        "status_badge",
        "pages",
        "size",
        "created_at",
        "duration",
        "tag_names",
    )
    list_display_links = ("first_page", "title")
    list_filter = (
        "status",
        ("library", admin.RelatedOnlyFieldListFilter),
        ("owner", admin.RelatedOnlyFieldListFilter),
        "created_at",
        # By name: each library has its own tags, and several may use the same name.
        ("tags__name", admin.AllValuesFieldListFilter),
    )
    date_hierarchy = "created_at"
    search_fields = ("title", "original_name", "^sha256", "=id")
    list_select_related = ("owner", "library")
    list_per_page = 50
    actions = (
        "rerun_pipeline",
        "reimport_weaviate",
        "retry_failed",
        "cancel_unfinished",
        "delete_selected",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "preview",
                    "title",
                    "library",
                    "owner",
                    "original_name",
                    "original_link",
                    "tag_names",
                )
            },
        ),
        (
            "Pipeline",
            {
                "fields": (
                    "status_badge",
                    ("pages_done", "pages_total"),
                    ("started_at", "finished_at", "duration"),
                    ("holder", "heartbeat_at", "resume_count"),
                    ("retries", "retry_at", "work_time"),
                    "failure_reason",
                )
            },
        ),
        ("File", {"fields": ("id", "sha256", "size", "created_at", "updated_at")}),
        ("Pages", {"fields": ("page_gallery",)}),
    )
    readonly_fields = (
        "preview",
        # Moved between libraries by their editors (the documents list), which also moves
        # the pages in Weaviate and the tags.
        "library",
        "owner",
        "tag_names",
        "original_name",
        "original_link",
        "status_badge",
        "pages_done",
        "pages_total",
        "started_at",
        "finished_at",
        "duration",
        "holder",
        "heartbeat_at",
        "resume_count",
        "retries",
        "retry_at",
        "work_time",
        "failure_reason",
        "id",
        "sha256",
        "size",
        "created_at",
        "updated_at",
        "page_gallery",
    )
    inlines = [DamagedPageInline, PipelineRunInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        first_page = Page.objects.filter(document=OuterRef("pk"), number=1)
        damaged = (
            DamagedPage.objects.filter(document=OuterRef("pk"))
            .values("document")
            .annotate(n=Count("id"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(has_first_page=Exists(first_page), damaged_count=Subquery(damaged))
            .prefetch_related("tags")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Documents come in through upload, the API or `import_pdfs`, which check the file.
        return False

    # --- columns and fields ---

    @admin.display(description="")
    def first_page(self, document: Document) -> SafeString | str:
        if not getattr(document, "has_first_page", False):
            return "—"
        return _thumbnail(document.id, 1)

    @admin.display(description="tags")
    def tag_names(self, document: Document) -> str:
        # Shown, not edited here: a document takes only its library's tags, which its editors
        # set.
        return ", ".join(tag.name for tag in document.tags.all()) or "—"

    @admin.display(description="library, by", ordering="library__name")
    def library_and_owner(self, document: Document) -> SafeString:
        # One column for both: the list has many, and a long title needs the room.
        return format_html(
            '{}<br><span class="quiet">{}</span>', document.library.name, document.owner
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, document: Document) -> SafeString:
        # The phase, as the documents pages say it ("Waiting" between two turns, say).
        return badge(phase_label(document), _STATUS_TONES[Status(document.status)])

    @admin.display(description="pages", ordering="pages_total")
    def pages(self, document: Document) -> str:
        if document.status == Status.READY:
            damaged = getattr(document, "damaged_count", 0)
            return (
                f"{document.pages_total} ({damaged} damaged)"
                if damaged
                else str(document.pages_total)
            )
        return f"{document.pages_done} / {document.pages_total or '?'}"

    @admin.display(description="size", ordering="size_bytes")
    def size(self, document: Document) -> str:
        return filesizeformat(document.size_bytes)

    @admin.display(description="duration")
    def duration(self, document: Document) -> str:
        if document.started_at is None:
            return "—"
        end = document.finished_at or timezone.now()
        running = "" if document.finished_at else " so far"
        return duration_text(end - document.started_at) + running

    @admin.display(description="worker time", ordering="work_seconds")
    def work_time(self, document: Document) -> str:
        """What workers spent on its pages (the page rate estimates use), not a raw float."""
        return duration_text(timedelta(seconds=document.work_seconds))

    @admin.display(description="first page")
    def preview(self, document: Document) -> SafeString | str:
        if not Page.objects.filter(document=document, number=1).exists():
            return "No page yet."
        return _thumbnail(document.id, 1, width=200)

    @admin.display(description="original PDF")
    def original_link(self, document: Document) -> SafeString:
        url = reverse("admin:documents_document_original", args=[document.id])
        return format_html('<a href="{}">{}</a>', url, document.original_name)

    @admin.display(description="failure reason")
    def failure_reason(self, document: Document) -> SafeString | str:
        if not document.error:
            return "—"
        # In full, wrapped: this is what an operator acts on.
        return format_html(
            '<pre class="docdb-pre docdb-error">{}</pre>{}',
            document.error,
            f"({document.error_code})" if document.error_code else "",
        )

    @admin.display(description="pages")
    def page_gallery(self, document: Document) -> SafeString | str:
        pages = list(document.pages.order_by("number").only("id", "number", "indexed_at"))
        if not pages:
            return "No pages yet."
        items = format_html_join(
            "",
            '<a href="{}" title="page {}{}" class="docdb-gallery-page">{}<br>{}{}</a>',
            (
                (
                    reverse("admin:documents_page_change", args=[page.id]),
                    page.number,
                    "" if page.indexed_at else " (not indexed)",
                    _thumbnail(document.id, page.number, width=96),
                    page.number,
                    "" if page.indexed_at else " ✗",
                )
                for page in pages[:GALLERY_PAGES]
            ),
        )
        more = ""
        if len(pages) > GALLERY_PAGES:
            url = reverse("admin:documents_page_changelist") + f"?document__id__exact={document.id}"
            more = format_html('<p><a href="{}">All {} pages</a></p>', url, len(pages))
        return format_html("<div>{}</div>{}", items, more)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The list's actions, as buttons for this one document (they post to the list).
        document = self.get_object(request, object_id)
        buttons = []
        if document is not None and document.is_terminal:
            buttons.append(("rerun_pipeline", "Re-run the pipeline"))
        if document is not None and document.status == Status.READY:
            buttons.append(("reimport_weaviate", "Re-import into Weaviate"))
        if document is not None and document.status == Status.FAILED:
            buttons.append(("retry_failed", "Retry"))
        context = {**(extra_context or {}), "document_actions": buttons}
        return super().change_view(request, object_id, form_url, context)

    # --- saving and deleting go through the services ---

    def save_model(self, request: HttpRequest, obj: Document, form: Any, change: bool) -> None:
        # The title is all there is to edit here. The web rename's service changes it in
        # Weaviate as well, without embedding a page again; a full save would also write back
        # the pipeline's fields as this form read them, over a running task's progress.
        if "title" not in form.changed_data:
            return
        try:
            document_rename(document=obj, title=obj.title)
        except WeaviateUnavailable as exc:
            # What the admin reports next names the document as it still is.
            obj.title = form.initial["title"]
            self.message_user(
                request,
                f"The title was not changed: the search index is not reachable ({exc}).",
                messages.ERROR,
            )

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        _, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Pages cannot be deleted on their own, but they go with their document; and a
        # summary per document reads better than a list of thousands of pages.
        perms_needed.discard(str(Page._meta.verbose_name))
        summary = [
            format_html(
                "{} — its {} pages, their images and thumbnails, and its objects in Weaviate",
                document,
                document.pages.count(),
            )
            for document in objs
        ]
        return summary, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        self._documents_delete(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        self._documents_delete(request, list(queryset))

    def _documents_delete(self, request: HttpRequest, documents: list[Document]) -> None:
        """Files, rows and Weaviate objects, one document at a time (the service's order)."""
        for document in documents:
            try:
                document_delete(document=document)
            except WeaviateUnavailable as exc:
                self.message_user(
                    request,
                    f"“{document.title}” was not deleted: the search index is not reachable "
                    f"({exc}).",
                    messages.ERROR,
                )

    # --- actions ---

    @admin.action(description="Re-run the pipeline (render and index again)")
    def rerun_pipeline(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        queued = sum(document_reindex(document=document) for document in queryset)
        self._report(request, queued, len(queryset), "queued to run again", "in progress")

    @admin.action(description="Re-import into Weaviate only (from the stored page images)")
    def reimport_weaviate(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        with transaction.atomic():
            queued = sum(document_reimport_queue(document=doc) is not None for doc in queryset)
        self._report(request, queued, len(queryset), "queued for re-import", "not ready")

    @admin.action(description="Retry failed documents")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        failed = [document for document in queryset if document.status == Status.FAILED]
        queued = sum(document_retry(document=document) for document in failed)
        self._report(request, queued, len(queryset), "queued again", "not failed")

    @admin.action(description="Cancel queued or processing documents")
    def cancel_unfinished(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        cancelled = sum(document_cancel(document=document) for document in queryset)
        self._report(request, cancelled, len(queryset), "cancelled", "already finished")

    def _report(self, request: HttpRequest, done: int, selected: int, what: str, why: str) -> None:
        level = messages.SUCCESS if done else messages.WARNING
        message = f"{done} of {selected} document{'s' if selected != 1 else ''} {what}."
        if done < selected:
            message += f" {selected - done} skipped ({why})."
        self.message_user(request, message, level)

    # --- staff views: page images, the original, rebuilding the index ---

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<uuid:document_id>/pages/<int:number>/thumbnail/",
                view(self.thumbnail_view),
                name="documents_document_thumbnail",
            ),
            path(
                "<uuid:document_id>/original/",
                view(self.original_view),
                name="documents_document_original",
            ),
            path(
                "recreate-index/",
                view(self.recreate_index_view),
                name="documents_document_recreate_index",
            ),
            *super().get_urls(),
        ]

    def thumbnail_view(
        self, request: HttpRequest, document_id: uuid.UUID, number: int
    ) -> FileResponse:
        if not self.has_view_permission(request):
            raise Http404
        return _file_response(page_thumbnail_name(document_id, number), "image/jpeg")

    def original_view(self, request: HttpRequest, document_id: uuid.UUID) -> FileResponse:
        if not self.has_view_permission(request):
            raise Http404
        document = get_object_or_404(Document, id=document_id)
        return _file_response(document.original_file, "application/pdf", document.original_name)

    def recreate_index_view(self, request: HttpRequest) -> HttpResponse:
        """Drop the collection and re-import every ready document, after typing its name."""
        if not self.has_change_permission(request):
            raise Http404
        try:
            server = server_describe()
            objects = pages_count() if server["collection_exists"] else 0
        except WeaviateUnavailable as exc:
            self.message_user(request, f"Weaviate is not reachable: {exc}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:documents_document_changelist"))
        collection = server["collection"]
        if request.method == "POST":
            if request.POST.get("confirm", "").strip() != collection:
                self.message_user(
                    request,
                    f"Nothing was changed: type the collection name “{collection}” to confirm.",
                    messages.ERROR,
                )
            else:
                queued = index_rebuild()
                self.message_user(
                    request,
                    f"The collection “{collection}” was recreated; {queued} documents are "
                    "queued for re-import. Search is incomplete until they have run.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("ops:operations"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Recreate the Weaviate collection",
            "opts": self.model._meta,
            "collection": collection,
            "objects": objects,
            "ready": Document.objects.filter(status=Status.READY).count(),
            "in_progress": Document.objects.filter(
                status__in=[Status.QUEUED, Status.PROCESSING]
            ).count(),
        }
        return render(request, "admin/documents/document/recreate_index.html", context)


def _file_response(name: str, content_type: str, filename: str = "") -> FileResponse:
    try:
        handle = file_open(name)  # FileResponse closes it
    except FileNotFoundError as exc:
        raise Http404("This file is not stored.") from exc
    response = FileResponse(handle, content_type=content_type, filename=filename)
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


class IndexedFilter(admin.SimpleListFilter):
    title = "indexed"
    parameter_name = "indexed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Page]) -> QuerySet[Page]:
        if self.value() in ("yes", "no"):
            return queryset.filter(indexed_at__isnull=self.value() == "no")
        return queryset


class DocumentStatusFilter(admin.ChoicesFieldListFilter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "document status"


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "library", "owner", "document_count", "created_at")
    list_filter = (("library", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name", "library__name", "owner__username")
    list_select_related = ("library", "owner")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(n_documents=Count("documents"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # A tag stays its library's: its documents are the library's.
        return ("library", "owner") if obj is not None else ()

    @admin.display(description="documents", ordering="n_documents")
    def document_count(self, tag: Tag) -> int:
        return getattr(tag, "n_documents", 0)


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "document_link", "number", "indexed", "text_source", "size_px")
    list_display_links = ("thumbnail", "number")
    list_select_related = ("document",)
    list_filter = (IndexedFilter, "text_source", ("document__status", DocumentStatusFilter))
    search_fields = ("document__title", "=document__id", "text")
    fields = ("preview", "document", "number", "size_px", "indexed_at", "text_source", "text")
    readonly_fields = fields
    list_per_page = 60

    def get_queryset(self, request: HttpRequest) -> QuerySet[Page]:
        return super().get_queryset(request).defer("text")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A page alone cannot go: Weaviate and the document's page count would disagree.
        return False

    @admin.display(description="")
    def thumbnail(self, page: Page) -> SafeString:
        return _thumbnail(page.document_id, page.number)

    @admin.display(description="document", ordering="document__title")
    def document_link(self, page: Page) -> SafeString:
        url = reverse("admin:documents_document_change", args=[page.document_id])
        return format_html('<a href="{}">{}</a>', url, page.document.title)

    @admin.display(description="page")
    def preview(self, page: Page) -> SafeString:
        return _thumbnail(page.document_id, page.number, width=240)

    @admin.display(description="indexed", boolean=True, ordering="indexed_at")
    def indexed(self, page: Page) -> bool:
        return page.indexed_at is not None

    @admin.display(description="pixels")
    def size_px(self, page: Page) -> str:
        return f"{page.width} x {page.height}"


_RUN_STATE_TONES = {
    RunState.QUEUED: "grey",
    RunState.RUNNING: "blue",
    RunState.RETRYING: "amber",
    RunState.SUCCEEDED: "green",
    RunState.FAILED: "red",
    RunState.SKIPPED: "grey",
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
        return badge(run.get_state_display(), _RUN_STATE_TONES[RunState(run.state)])

    @admin.display(description="queued at", ordering="queued_at")
    def queued(self, run: PipelineRun) -> str:
        return date_format(timezone.localtime(run.queued_at), "Y-m-d H:i:s")

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
        return format_html('<pre class="docdb-pre">{}</pre>', run.error)


class MembershipFormSet(BaseInlineFormSet):
    """The rules the Libraries pages keep, kept here too: a library has an owner, and a personal
    library has its person as its only member."""

    def clean(self) -> None:
        super().clean()
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        library = self.instance
        if library.pk is not None and library.personal_of_id is not None:
            members = [(row["user"].pk, row["role"]) for row in kept]
            if members != [(library.personal_of_id, Role.OWNER)]:
                raise ValidationError(
                    "A personal library has its person as its only member, as owner."
                )
        elif not any(row["role"] == Role.OWNER for row in kept):
            raise ValidationError("A library needs at least one owner.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("user",)
    extra = 0


@admin.register(Library)
class LibraryAdmin(admin.ModelAdmin):
    list_display = ("name", "personal_of", "member_count", "document_count", "created_at")
    list_filter = (("personal_of", admin.EmptyFieldListFilter),)
    search_fields = ("name", "personal_of__username")
    list_select_related = ("personal_of",)
    fields = ("name", "personal_of", "created_at")
    readonly_fields = ("personal_of", "created_at")
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Library]:
        members = Membership.objects.filter(library=OuterRef("pk")).values("library")
        documents = Document.objects.filter(library=OuterRef("pk")).values("library")
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_members=Subquery(members.annotate(n=Count("pk")).values("n")),
                n_documents=Subquery(documents.annotate(n=Count("pk")).values("n")),
            )
        )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Deleting rows would take documents without their files and search entries.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Library | None = None) -> bool:
        # As on the Libraries pages: only an empty shared library goes.
        if obj is not None and (obj.personal_of_id is not None or obj.documents.exists()):
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="members", ordering="n_members")
    def member_count(self, library: Library) -> int:
        return getattr(library, "n_members", None) or 0

    @admin.display(description="documents", ordering="n_documents")
    def document_count(self, library: Library) -> int:
        return getattr(library, "n_documents", None) or 0


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Every membership, to look through; they are changed on their library's page, which
    keeps the rules."""

    list_display = ("user", "library", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("library__name", "user__username", "user__email")
    list_select_related = ("user", "library")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- people: deleted through `documents.people`, which keeps what others share ---

# The confirmation names at most this many documents of each kind per library.
_TITLES_SHOWN = 20


def _titles(documents: list[Document]) -> list[str]:
    titles = [document.title for document in documents[:_TITLES_SHOWN]]
    if len(documents) > _TITLES_SHOWN:
        titles.append(f"… and {len(documents) - _TITLES_SHOWN} more")
    return titles


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _plan_summary(plan: PersonDeletePlan) -> list[Any]:
    """What deleting the person does, as the confirmation page's nested list."""
    done: list[Any] = []
    personal = plan.personal_documents
    if personal:
        done += [
            format_html(
                "Deleted: the {} of their personal library, with their page images, "
                "thumbnails, originals and search entries:",
                _plural(len(personal), "document"),
            ),
            _titles(personal),
        ]
    done += [
        format_html(
            "Deleted: the shared library “{}”, of which they are the only member and which "
            "holds no documents",
            library.name,
        )
        for library in plan.libraries_deleted
    ]
    for handover in plan.handovers:
        tags = f" and {_plural(handover.tags, 'tag')} they made" if handover.tags else ""
        done.append(
            format_html(
                "Stays in the shared library “{}”, passing to its owner {}: {}{}{}",
                handover.library.name,
                handover.heir.get_username(),
                _plural(len(handover.documents), "document"),
                " they uploaded" if handover.documents else "",
                tags,
            )
        )
        if handover.documents:
            done.append(_titles(handover.documents))
    person = format_html(
        "The person “{}”: their account, personal library, memberships, API tokens and "
        "search images",
        plan.person.get_username(),
    )
    return [person, done]


admin.site.unregister(User)


@admin.register(User)
class PersonAdmin(UserAdmin):
    """Django's user admin, deleting people through `person_delete`: their personal documents
    completely, what they shared handed to the libraries' owners, and refused (with the reason
    instead of the button) while a shared library would be left without an owner."""

    actions = ("delete_selected",)

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        plans = [person_delete_plan(person=person) for person in objs]
        counts = {
            "people": len(plans),
            "personal documents deleted": sum(len(plan.personal_documents) for plan in plans),
            "documents kept in shared libraries": sum(
                len(handover.documents) for plan in plans for handover in plan.handovers
            ),
        }
        summary = [item for plan in plans for item in _plan_summary(plan)]
        refusals = [plan.refusal for plan in plans if plan.refusal]
        # Deleting goes through the service, not the cascade: no other model's permission
        # is needed.
        return summary, counts, set(), refusals

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Django runs the confirmed deletion inside a transaction, which `person_delete` must
        # not be in (each personal document's deletion commits on its own); Django's view
        # still shows the confirmation, and answers what is missing or forbidden.
        person = self.get_object(request, unquote(object_id))
        if request.method != "POST" or person is None:
            return super().delete_view(request, object_id, extra_context)
        if not self.has_delete_permission(request, person):
            raise PermissionDenied
        name, pk = str(person), person.pk
        if not self._people_delete(request, [person]):
            return HttpResponseRedirect(request.path)
        return self.response_delete(request, name, pk)

    @admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[User]
    ) -> TemplateResponse | None:
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)  # the confirmation page
        people = list(queryset)
        deleted = self._people_delete(request, people)
        if deleted:
            self.message_user(request, f"Deleted {deleted} of the {len(people)} selected people.")
        return None

    def _people_delete(self, request: HttpRequest, people: list[User]) -> int:
        """Delete each person, log it, and report why any was not; returns how many went."""
        deleted = []
        for person in people:
            # Its primary key for the log, which deleting clears.
            record = copy.copy(person)
            try:
                person_delete(person=person)
            except PersonNotDeleted as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            deleted.append(record)
        # A log row names who acted, and goes with them: none when they deleted themselves.
        logged = [record for record in deleted if record.pk != request.user.pk]
        if logged:
            self.log_deletions(request, logged)  # type: ignore[arg-type]  # a list does
        return len(deleted)
