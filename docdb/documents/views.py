import re
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from docdb import pdf
from docdb.documents.bulk import BulkAction, BulkOutcome, documents_bulk
from docdb.documents.files import file_open
from docdb.documents.forms import SORT_LABELS, BulkForm, DocumentListForm, RenameForm, TagForm
from docdb.documents.libraries import (
    ChangeRefused,
    LibraryChoice,
    change_refusal,
    document_change_check,
    documents_visible,
    libraries_visible,
    libraries_with_role,
    library_choices,
    library_for_upload,
)
from docdb.documents.models import (
    PAGE_NUMBER_MAX,
    Document,
    Library,
    Page,
    Role,
    Status,
    number_parse,
)
from docdb.documents.progress import document_progress, documents_progress, workers_alive
from docdb.documents.requests import AuthenticatedRequest
from docdb.documents.services import (
    UploadRejected,
    document_cancel,
    document_delete,
    document_rename,
    document_retry,
    document_upload,
    document_with_checksum,
)
from docdb.documents.tags import (
    TagRejected,
    document_tag_add,
    document_tag_remove,
    documents_tagged,
    tags_of,
    tags_of_library,
)
from docdb.documents.unlock import document_unlock
from docdb.documents.uploads import upload_files
from docdb.weaviate_store import WeaviateUnavailable

LIST_PAGE_SIZE = 25
_SHA256 = re.compile("[0-9a-f]{64}")
NO_WORKER_MESSAGE = (
    "No worker is running, so nothing is being processed. Queued documents go on as soon as "
    "one starts (make run starts one; so does: celery -A docdb.celery worker)."
)


def _document_get(request: AuthenticatedRequest, document_id: uuid.UUID) -> Document:
    # A document of a library the person is not a member of answers 404, exactly like one
    # that does not exist.
    return get_object_or_404(
        documents_visible(user=request.user).select_related("library"), id=document_id
    )


def _document_for_change(request: AuthenticatedRequest, document_id: uuid.UUID) -> Document:
    """The document, if the person may change it: 404 as above, 403 (ChangeRefused, with a
    sentence saying why) for a viewer of its library."""
    document = _document_get(request, document_id)
    document_change_check(user=request.user, document=document)
    return document


def _page_get(request: AuthenticatedRequest, document_id: uuid.UUID, number: int) -> Page:
    return get_object_or_404(
        Page.objects.select_related("document", "document__library"),
        document__in=documents_visible(user=request.user),
        document_id=document_id,
        number=number,
    )


def _library_chosen(request: AuthenticatedRequest, libraries: QuerySet[Library]) -> int | None:
    """The library picked in the `library` parameter, among these ones (None: all of them)."""
    chosen = number_parse(request.GET.get("library", "") or request.POST.get("library", ""))
    if chosen is None:
        return None
    return libraries.filter(id=chosen).values_list("id", flat=True).first()


def _file_response(
    name: str, content_type: str, *, filename: str = "", attachment: bool = False
) -> FileResponse:
    """A stored file streamed to its owner (the caller checked who asks). From a bucket too:
    docs/storage.md says why Django streams it rather than redirecting to a presigned URL."""
    try:
        handle = file_open(name)  # FileResponse closes it
    except FileNotFoundError as exc:
        raise Http404("This file is not stored (yet).") from exc
    response = FileResponse(
        handle, content_type=content_type, filename=filename, as_attachment=attachment
    )
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _wants_json(request: AuthenticatedRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _max_upload_mb() -> int:
    return settings.UPLOAD_MAX_BYTES // (1024 * 1024)


@require_GET
def document_list(request: AuthenticatedRequest) -> HttpResponse:
    form = DocumentListForm(request.GET)
    visible = documents_visible(user=request.user)
    libraries = libraries_visible(user=request.user)
    library_id = _library_chosen(request, libraries)
    documents = visible if library_id is None else visible.filter(library_id=library_id)
    documents = documents.select_related("library").order_by(*form.order_by())
    if status := form.status_filter():
        documents = documents.filter(status=status)
    documents = _documents_narrowed(documents, query=form.title_search())
    tag = form.tag_filter()
    if tag:
        documents = documents_tagged(documents=documents, name=tag)
    documents = documents.prefetch_related("tags")
    page = Paginator(documents, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    progress = documents_progress(list(page.object_list), viewer=request.user)
    move_targets = library_choices(
        libraries_with_role(user=request.user, role=Role.EDITOR), viewer=request.user
    )
    # Sort links and the pager keep the other parameters of the current view.
    keep = request.GET.copy()
    keep.pop("page", None)
    return render(
        request,
        "documents/list.html",
        {
            "page_obj": page,
            "rows": [(document, progress[document.id]) for document in page.object_list],
            "sort": form.sort_key(),
            "status": status,
            "statuses": Status.choices,
            "sorts": SORT_LABELS,
            "query_without_page": keep.urlencode(),
            "has_any": visible.exists(),
            "q": form.title_search(),
            "tag": tag,
            "tags": tags_of(user=request.user, library_id=library_id),
            # The library filter and the move action show only to a person with several.
            "bulk_actions": [
                (value, label)
                for value, label in BulkAction.choices
                if value != BulkAction.MOVE or len(move_targets) > 1
            ],
            "libraries": library_choices(libraries, viewer=request.user),
            "library_id": library_id,
            "move_targets": move_targets,
        },
    )


@require_GET
def document_statuses(request: AuthenticatedRequest) -> JsonResponse:
    """Progress of the given documents, polled by the pages that show them."""
    ids = []
    for raw in request.GET.getlist("id")[:200]:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            continue
    documents = list(documents_visible(user=request.user).filter(id__in=ids))
    body: dict[str, object] = {
        "documents": list(documents_progress(documents, viewer=request.user).values())
    }
    # Only asked while something waits: a ping takes a second when no worker answers.
    if any(not document.is_terminal for document in documents):
        alive = workers_alive()
        body["worker"] = {"alive": alive, "message": "" if alive else NO_WORKER_MESSAGE}
    return JsonResponse(body)


@require_http_methods(["GET", "POST"])
def document_upload_view(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "GET":
        return render(
            request,
            "documents/upload.html",
            {
                "max_upload_mb": _max_upload_mb(),
                "max_upload_bytes": settings.UPLOAD_MAX_BYTES,
                "upload_libraries": _upload_libraries(request),
            },
        )
    # Without JavaScript the form posts every file here at once.
    files = request.FILES.getlist("file")
    if not files:
        messages.error(request, "Choose one or more PDF files to upload.")
        return redirect("documents:upload")
    library = _upload_library(request)
    for upload in files:
        try:
            document = document_upload(owner=request.user, upload=upload, library=library)
        except UploadRejected as exc:
            messages.error(request, exc.reason)
        else:
            messages.success(request, f"“{document.title}” was uploaded and is queued.")
    return redirect("documents:list")


def _upload_libraries(request: AuthenticatedRequest) -> list[LibraryChoice]:
    """The libraries the person may upload to, their personal one first (the default)."""
    personal = Library.objects.personal(request.user)
    others = libraries_with_role(user=request.user, role=Role.EDITOR).exclude(id=personal.id)
    return library_choices([personal, *others], viewer=request.user)


def _upload_library(request: AuthenticatedRequest) -> Library:
    """The library chosen for an upload (`library`, else the personal one): 404 for one the
    person cannot see, 403 where they may only read."""
    raw = request.POST.get("library", "") or request.GET.get("library", "")
    chosen = number_parse(raw)
    if raw.strip() and chosen is None:
        raise Http404("No such library.")
    try:
        return library_for_upload(user=request.user, library_id=chosen)
    except Library.DoesNotExist as exc:
        raise Http404("No such library.") from exc


@upload_files(1)
@require_POST
def document_upload_file(request: AuthenticatedRequest) -> JsonResponse:
    """One file from the upload page's script; the answer says what became of it."""
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse({"error": "No file was sent."}, status=400)
    try:
        library = _upload_library(request)
    except ChangeRefused as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    try:
        document = document_upload(owner=request.user, upload=upload, library=library)
    except UploadRejected as exc:
        body: dict[str, object] = {"error": exc.reason}
        if exc.duplicate_of is None:
            return JsonResponse(body, status=400)
        body["duplicate_of"] = _duplicate_body(exc.duplicate_of)
        return JsonResponse(body, status=409)
    return JsonResponse({"document": document_progress(document, viewer=request.user)}, status=201)


def _duplicate_body(original: Document) -> dict[str, str]:
    return {
        "id": str(original.id),
        "title": original.title,
        "url": reverse("documents:detail", args=[original.id]),
    }


@require_GET
def document_checksum(request: AuthenticatedRequest) -> JsonResponse:
    """Does the person have this file already? The upload page asks with the SHA-256 it
    computed, before sending the file; only the library it goes to is looked at."""
    sha256 = request.GET.get("sha256", "")
    if not _SHA256.fullmatch(sha256):
        return JsonResponse({"error": "Give sha256, 64 lower-case hex digits."}, status=400)
    original = document_with_checksum(library=_upload_library(request), sha256=sha256)
    return JsonResponse({"duplicate_of": _duplicate_body(original) if original else None})


@require_GET
def document_detail(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_get(request, document_id)
    pages = document.pages.defer("text").order_by("number")
    return render(
        request,
        "documents/detail.html",
        {
            "document": document,
            "pages": pages,
            "p": document_progress(document, viewer=request.user),
            "tags": document.tags.all(),
            "tag_choices": tags_of_library(library=document.library),
            # Viewers are offered no changes (the views refuse them anyway).
            "can_change": not change_refusal(user=request.user, library=document.library),
        },
    )


@require_POST
def document_retry_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_for_change(request, document_id)
    queued = document_retry(document=document)
    return _state_changed(
        request,
        document,
        changed=("queued", queued),
        done="is queued again",
        not_done="is already being processed",
    )


@require_POST
def document_unlock_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_for_change(request, document_id)
    try:
        unlocked = document_unlock(document=document, password=request.POST.get("password", ""))
    except pdf.PdfError as exc:
        messages.error(request, exc.reason)
    else:
        if unlocked:
            messages.success(request, f"“{document.title}” is unlocked and queued again.")
        else:
            messages.error(request, "That password does not open this PDF.")
    return redirect("documents:detail", document_id=document.id)


@require_POST
def document_cancel_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_for_change(request, document_id)
    cancelled = document_cancel(document=document)
    return _state_changed(
        request,
        document,
        changed=("cancelled", cancelled),
        done="was cancelled",
        not_done="had already finished",
    )


def _state_changed(
    request: AuthenticatedRequest,
    document: Document,
    *,
    changed: tuple[str, bool],
    done: str,
    not_done: str,
) -> HttpResponse:
    """A state button's answer: the new status for the script, else a message and the page."""
    key, happened = changed
    if _wants_json(request):
        document.refresh_from_db()
        return JsonResponse(
            {key: happened, "document": document_progress(document, viewer=request.user)}
        )
    if happened:
        messages.success(request, f"“{document.title}” {done}.")
    else:
        messages.info(request, f"“{document.title}” {not_done}.")
    return redirect("documents:detail", document_id=document.id)


@require_POST
def document_rename_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_for_change(request, document_id)
    form = RenameForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A title needs 1 to 300 characters.")
    else:
        try:
            document_rename(document=document, title=form.cleaned_data["title"])
        except WeaviateUnavailable:
            messages.error(
                request, "The search index is not reachable, so the title was not changed."
            )
        else:
            messages.success(request, f"Renamed to “{document.title}”.")
    return redirect(_next_url(request) or "documents:list")


def _next_url(request: AuthenticatedRequest) -> str:
    # Only a path on this site: a crafted form must not send people elsewhere.
    target = request.POST.get("next", "")
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else ""


@require_http_methods(["GET", "POST"])
def document_delete_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_for_change(request, document_id)
    if request.method == "GET":
        return render(request, "documents/delete.html", {"document": document})
    try:
        document_delete(document=document)
    except WeaviateUnavailable:
        messages.error(
            request,
            "The search index is not reachable, so nothing was deleted. Try again in a moment.",
        )
        return redirect("documents:detail", document_id=document.id)
    messages.success(request, f"“{document.title}” was deleted.")
    return redirect("documents:list")


@require_GET
def document_file(request: AuthenticatedRequest, document_id: uuid.UUID) -> FileResponse:
    document = _document_get(request, document_id)
    # Shown inline in the browser's PDF viewer; the stored name is generated, the given one
    # is only offered (escaped by Django) as the download name.
    return _file_response(
        document.original_file, "application/pdf", filename=document.original_name
    )


@require_GET
def page_detail(request: AuthenticatedRequest, document_id: uuid.UUID, number: int) -> HttpResponse:
    page = _page_get(request, document_id, number)
    total = page.document.pages_total
    return render(
        request,
        "documents/page.html",
        {
            "page": page,
            "document": page.document,
            "previous": number - 1 if number > 1 else None,
            "next": number + 1 if number < total else None,
            "query": " ".join(request.GET.get("q", "").split())[:500],
            "search_query": _search_query(request),
        },
    )


@require_GET
def page_jump(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    """The detail page's "Go to page" form: the page view, or the document with why not."""
    document = _document_get(request, document_id)
    raw = request.GET.get("number", "").strip()
    number = number_parse(raw, maximum=PAGE_NUMBER_MAX)
    if number is not None and document.pages.filter(number=number).exists():
        return redirect("documents:page", document.id, number)
    total = document.pages.count()
    so_far = "" if document.status == Status.READY else " so far"
    messages.error(
        request,
        f"There is no page “{raw[:20]}” to open: this document has "
        f"{total} page{'s' if total != 1 else ''}{so_far}.",
    )
    return redirect("documents:detail", document.id)


# What a search is made of, carried from its results through a page view (and its previous and
# next links) back to the same results.
_SEARCH_PARAMS = ("q", "mode", "alpha", "document", "tag", "date_from", "date_to", "image")


def _search_query(request: AuthenticatedRequest) -> str:
    """The search the page was opened from, as a query string ("" when none)."""
    kept = QueryDict(mutable=True)
    for name in _SEARCH_PARAMS:
        values = [value[:500] for value in request.GET.getlist(name) if value]
        if values:
            kept.setlist(name, values)
    return kept.urlencode() if kept.get("q") or kept.get("image") else ""


@require_GET
def page_image(request: AuthenticatedRequest, document_id: uuid.UUID, number: int) -> FileResponse:
    page = _page_get(request, document_id, number)
    download = request.GET.get("download") == "1"
    return _file_response(
        page.image_name,
        "image/jpeg",
        filename=f"{page.document.title} - page {page.number}.jpg" if download else "",
        attachment=download,
    )


@require_GET
def page_thumbnail(
    request: AuthenticatedRequest, document_id: uuid.UUID, number: int
) -> FileResponse:
    page = _page_get(request, document_id, number)
    return _file_response(page.thumbnail_name, "image/jpeg")


def _documents_narrowed(documents: QuerySet[Document], *, query: str) -> QuerySet[Document]:
    """The documents whose title or file name holds the words typed (the list's search)."""
    if not query:
        return documents
    return documents.filter(Q(title__icontains=query) | Q(original_name__icontains=query))


# The search page's document filter suggests this many documents as a title is typed.
SUGGEST_LIMIT = 10


@require_GET
def document_suggest(request: AuthenticatedRequest) -> JsonResponse:
    """The person's ready documents whose title holds what was typed, for the search filter."""
    # PostgreSQL refuses NUL in text; no title holds one.
    query = " ".join(request.GET.get("q", "").replace("\x00", "").split())[:300]
    documents = documents_visible(user=request.user).filter(status=Status.READY)
    documents = _documents_narrowed(documents, query=query)
    rows = documents.order_by(Lower("title"), "id").values("id", "title")[:SUGGEST_LIMIT]
    return JsonResponse({"documents": [{"id": str(r["id"]), "title": r["title"]} for r in rows]})


@require_POST
def document_tag_add_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_for_change(request, document_id)
    form = TagForm(request.POST)
    try:
        if not form.is_valid():
            raise TagRejected("A tag needs 1 to 50 characters.")
        tag = document_tag_add(document=document, name=form.cleaned_data["name"], user=request.user)
    except TagRejected as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Tagged “{tag.name}”.")
    return redirect(_next_url(request) or reverse("documents:detail", args=[document.id]))


@require_POST
def document_tag_remove_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_for_change(request, document_id)
    name = request.POST.get("name", "")
    if document_tag_remove(document=document, name=name):
        messages.success(request, f"Removed the tag “{' '.join(name.split())}”.")
    return redirect(_next_url(request) or reverse("documents:detail", args=[document.id]))


@require_POST
def document_bulk_view(request: AuthenticatedRequest) -> HttpResponse:
    """The documents list's selection: one action on the ticked documents the person may
    change."""
    back = _next_url(request) or reverse("documents:list")
    form = BulkForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect(back)
    if not form.document_ids():
        messages.info(request, "Tick the documents to act on first.")
        return redirect(back)
    action = BulkAction(form.cleaned_data["action"])
    try:
        outcome = documents_bulk(
            user=request.user,
            document_ids=form.document_ids(),
            action=action,
            tag=form.cleaned_data["tag"],
            library_id=form.cleaned_data["library"],
        )
    except TagRejected as exc:
        messages.error(request, str(exc))
        return redirect(back)
    _bulk_report(request, action, outcome, tag=form.cleaned_data["tag"])
    return redirect(back)


_BULK_DONE = {
    BulkAction.TAG: "Added the tag “{tag}” to {count}.",
    BulkAction.UNTAG: "Removed the tag “{tag}” from {count}.",
    BulkAction.RERUN: "Queued {count} to be processed again.",
    BulkAction.DELETE: "Deleted {count}.",
    BulkAction.MOVE: "Moved {count} to another library.",
}


def _bulk_report(
    request: AuthenticatedRequest, action: BulkAction, outcome: BulkOutcome, *, tag: str
) -> None:
    if outcome.done:
        count = len(outcome.done)
        documents = f"{count} document{'s' if count != 1 else ''}"
        messages.success(
            request, _BULK_DONE[action].format(tag=" ".join(tag.split()), count=documents)
        )
    for document, reason in outcome.skipped:
        messages.warning(request, f"“{document.title}” was left as it was: {reason}.")
    if not outcome.done and not outcome.skipped:
        messages.info(request, "None of the ticked documents is there any more.")
