import uuid

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from docdb.documents.models import Document, Page
from docdb.documents.requests import AuthenticatedRequest
from docdb.documents.services import (
    UploadRejected,
    document_delete,
    document_retry,
    document_upload,
)
from docdb.weaviate_store import WeaviateUnavailable


def _document_get(request: AuthenticatedRequest, document_id: uuid.UUID) -> Document:
    # Someone else's document answers 404, exactly like one that does not exist.
    return get_object_or_404(Document, id=document_id, owner=request.user)


def _page_get(request: AuthenticatedRequest, document_id: uuid.UUID, number: int) -> Page:
    return get_object_or_404(
        Page.objects.select_related("document"),
        document_id=document_id,
        document__owner=request.user,
        number=number,
    )


def _file_response(path: str, content_type: str, *, filename: str = "") -> FileResponse:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it
    except FileNotFoundError as exc:
        raise Http404("This file is not on disk (yet).") from exc
    response = FileResponse(handle, content_type=content_type, filename=filename)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def document_list(request: AuthenticatedRequest) -> HttpResponse:
    documents = Document.objects.filter(owner=request.user)
    page = Paginator(documents, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "documents/list.html",
        {"page_obj": page, "max_upload_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024)},
    )


@require_GET
def document_statuses(request: AuthenticatedRequest) -> JsonResponse:
    """Status of the given documents, polled by the list page for live progress."""
    ids = []
    for raw in request.GET.getlist("id")[:200]:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            continue
    documents = Document.objects.filter(owner=request.user, id__in=ids)
    return JsonResponse(
        {
            "documents": [
                {
                    "id": str(doc.id),
                    "status": doc.status,
                    "status_label": doc.get_status_display(),
                    "pages_total": doc.pages_total,
                    "pages_done": doc.pages_done,
                    "progress": doc.progress_percent,
                    "error": doc.error,
                }
                for doc in documents
            ]
        }
    )


@require_http_methods(["GET", "POST"])
def document_upload_view(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "GET":
        return render(
            request,
            "documents/upload.html",
            {"max_upload_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024)},
        )
    files = request.FILES.getlist("file")
    if not files:
        messages.error(request, "Choose one or more PDF files to upload.")
        return redirect("documents:upload")
    for upload in files:
        try:
            document = document_upload(owner=request.user, upload=upload)
        except UploadRejected as exc:
            messages.error(request, exc.reason)
        else:
            messages.success(request, f"“{document.title}” was uploaded and is queued.")
    return redirect("documents:list")


@require_GET
def document_detail(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_get(request, document_id)
    pages = document.pages.defer("text").order_by("number")
    return render(request, "documents/detail.html", {"document": document, "pages": pages})


@require_POST
def document_retry_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_get(request, document_id)
    if document_retry(document=document):
        messages.success(request, f"“{document.title}” is queued again.")
    else:
        messages.info(request, f"“{document.title}” is already being processed.")
    return redirect("documents:detail", document_id=document.id)


@require_http_methods(["GET", "POST"])
def document_delete_view(request: AuthenticatedRequest, document_id: uuid.UUID) -> HttpResponse:
    document = _document_get(request, document_id)
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
    return _file_response(document.file.path, "application/pdf", filename=document.original_name)


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
            "query": request.GET.get("q", ""),
        },
    )


@require_GET
def page_image(request: AuthenticatedRequest, document_id: uuid.UUID, number: int) -> FileResponse:
    page = _page_get(request, document_id, number)
    return _file_response(str(page.image_path), "image/jpeg")


@require_GET
def page_thumbnail(
    request: AuthenticatedRequest, document_id: uuid.UUID, number: int
) -> FileResponse:
    page = _page_get(request, document_id, number)
    return _file_response(str(page.thumbnail_path), "image/jpeg")
