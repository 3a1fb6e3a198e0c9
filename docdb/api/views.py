"""The JSON API: documents and search, authenticated by per-user bearer tokens.

The OpenAPI document is generated from these signatures and served at /api/openapi.json.
"""

import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone
from ninja import Field, File, Form, NinjaAPI, Query, Schema, Status
from ninja.errors import HttpError
from ninja.files import UploadedFile
from ninja.security import HttpBearer

from docdb.api.common import COMMON, ApiRequest, Error
from docdb.api.libraries import router as libraries_router
from docdb.api.models import ApiToken, token_hash
from docdb.documents.libraries import (
    ChangeRefused,
    document_change_check,
    documents_visible,
    library_for_upload,
)
from docdb.documents.models import ID_MAX, MAX_TAG_LENGTH, Document, Library
from docdb.documents.models import Status as DocumentStatus
from docdb.documents.progress import document_progress, documents_progress
from docdb.documents.services import (
    UploadRejected,
    document_cancel,
    document_delete,
    document_retry,
    document_upload,
)
from docdb.documents.tags import TagRejected, document_tags_set, documents_tagged
from docdb.documents.uploads import UploadTooLarge, too_large_response
from docdb.search.models import QueryImage
from docdb.search.query_images import MAX_BYTES, query_image_create
from docdb.search.services import (
    MAX_LIMIT,
    QueryRejected,
    SearchResponse,
    SearchUnavailable,
    page_results_search,
    search_scope,
)
from docdb.weaviate_store import SearchMode, WeaviateUnavailable

# A token's last use is recorded at most this often, so reads do not all turn into writes.
_LAST_USED_GRANULARITY_SECONDS = 300


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        row = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=token_hash(token), revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if row is None:
            return None
        now = timezone.now()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > (
            _LAST_USED_GRANULARITY_SECONDS
        ):
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        request.user = row.user
        return row.user


api = NinjaAPI(
    title="DocDB API",
    version="1",
    description="Upload PDFs, follow their processing, search their pages. "
    "Authenticate with `Authorization: Bearer <token>` "
    "(create one on your account page, /account/, or with "
    "`python manage.py create_api_token USERNAME`).",
    auth=TokenAuth(),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
)


def _bad_request(request: HttpRequest, exc: object) -> HttpResponse:
    # Malformed multipart (no boundary, too many files, oversized part headers) and other
    # requests Django finds suspicious: a JSON 400 like every other client error here, whatever
    # DEBUG says (Ninja would answer them with a 500 and a plain-text traceback).
    return api.create_response(request, {"detail": f"Bad request: {exc}"}, status=400)


def _too_large(request: HttpRequest, exc: object) -> HttpResponse:
    return too_large_response(request, str(exc))


for _exception in (MultiPartParserError, SuspiciousOperation, BadRequest):
    api.add_exception_handler(_exception, _bad_request)
api.add_exception_handler(UploadTooLarge, _too_large)
api.add_router("/libraries", libraries_router)


class DamagedPageOut(Schema):
    number: int
    reason: str


class DocumentOut(Schema):
    id: uuid.UUID
    title: str
    file_name: str
    status: DocumentStatus
    # What it does right now: queued, waiting (for its next turn), retrying, processing (a
    # worker works on it), or its final status.
    phase: str
    # Among the owner's own unfinished documents, in the order they are worked on.
    queue_position: int | None
    waiting_behind: int
    eta_seconds: int | None
    detail: str
    pages_total: int
    pages_done: int
    # A ready document's pages that no engine could render (they are not searchable).
    damaged_pages: list[DamagedPageOut]
    error: str
    # Why it failed, for programs: not_pdf, empty, encrypted, damaged, too_many_pages,
    # page_too_large, timeout, or "" for any other failure.
    error_code: str
    # Whether processing it again may help; a password-protected one is unlocked instead.
    can_retry: bool
    size_bytes: int
    sha256: str
    created_at: datetime
    url: str
    # Its library's tags on it, by name, A to Z.
    tags: list[str]
    # The library it is in (GET /api/libraries lists yours).
    library_id: int

    @staticmethod
    def from_document(document: Document, progress: dict[str, Any] | None = None) -> "DocumentOut":
        progress = progress or document_progress(document)
        return DocumentOut(
            id=document.id,
            title=document.title,
            file_name=document.original_name,
            status=DocumentStatus(document.status),
            phase=progress["phase"],
            queue_position=progress["queue_position"],
            waiting_behind=progress["waiting_behind"],
            eta_seconds=progress["eta_seconds"],
            detail=progress["detail"],
            pages_total=document.pages_total,
            pages_done=document.pages_done,
            damaged_pages=[DamagedPageOut(**page) for page in progress["damaged_pages"]],
            error=document.error,
            error_code=document.error_code,
            can_retry=document.can_retry,
            size_bytes=document.size_bytes,
            sha256=document.sha256,
            created_at=document.created_at,
            url=reverse("documents:detail", args=[document.id]),
            tags=[tag.name for tag in document.tags.all()],
            library_id=document.library_id,
        )


class Rejection(Schema):
    file_name: str
    reason: str
    duplicate_of: uuid.UUID | None = None


class UploadOut(Schema):
    documents: list[DocumentOut]
    rejected: list[Rejection]


class DocumentList(Schema):
    documents: list[DocumentOut]
    count: int


class ListParams(Schema):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000_000)
    # Only documents of this file (its SHA-256, lower-case hex): ask before uploading it.
    sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")
    # Only documents with a tag of this name (any case).
    tag: str | None = Field(None, max_length=MAX_TAG_LENGTH)
    # Only documents of this one of your libraries (default: all of them).
    library: int | None = Field(None, ge=1, le=ID_MAX)


class SearchParams(Schema):
    q: str = Field("", max_length=500)
    mode: SearchMode = SearchMode.VECTOR
    limit: int = Field(10, ge=1, le=MAX_LIMIT)
    document_id: uuid.UUID | None = None
    # Only pages of documents with a tag of this name.
    tag: str | None = Field(None, max_length=MAX_TAG_LENGTH)
    # Only pages of this one of your libraries (default: all of them).
    library: int | None = Field(None, ge=1, le=ID_MAX)
    # An image searched with before (`image_id` of POST /search/image): searched again without
    # sending or embedding it again. Used when `q` is empty.
    image: uuid.UUID | None = None


class ImageSearchParams(Schema):
    limit: int = Field(10, ge=1, le=MAX_LIMIT)
    document_id: uuid.UUID | None = None
    tag: str | None = Field(None, max_length=MAX_TAG_LENGTH)
    library: int | None = Field(None, ge=1, le=ID_MAX)


class TagsIn(Schema):
    # Tag names of the document's library (made as needed; "Tax" and "tax" are one): the
    # document gets exactly these, replacing those it had.
    tags: list[str] = Field(..., max_length=100)


class SearchHitOut(Schema):
    document_id: uuid.UUID
    title: str
    page_number: int
    # As the mode makes it (semantic: MaxSim; keyword: BM25; hybrid: fused 0 to 1); equal
    # scores come by document, then page.
    score: float
    thumbnail_url: str
    image_url: str
    page_url: str


class SearchOut(Schema):
    query: str
    mode: SearchMode
    milliseconds: int
    results: list[SearchHitOut]
    # For a search by image: pass it as `image` to GET /search to search with it again.
    image_id: uuid.UUID | None = None


def _document_get(request: ApiRequest, document_id: uuid.UUID) -> Document:
    # A document of a library you are not a member of answers 404, as one that does not exist.
    return get_object_or_404(
        documents_visible(user=request.auth).select_related("library"), id=document_id
    )


def _document_for_change(request: ApiRequest, document_id: uuid.UUID) -> Document:
    """The document, if you may change it: 404 as above, 403 where you are a viewer."""
    document = _document_get(request, document_id)
    try:
        document_change_check(user=request.auth, document=document)
    except ChangeRefused as exc:
        raise HttpError(403, str(exc)) from exc
    return document


def _upload_library(request: ApiRequest, library_id: int | None) -> Library:
    try:
        return library_for_upload(user=request.auth, library_id=library_id)
    except Library.DoesNotExist as exc:
        raise HttpError(404, "No such library.") from exc
    except ChangeRefused as exc:
        raise HttpError(403, str(exc)) from exc


@api.post(
    "/documents",
    response={
        201: UploadOut,
        400: UploadOut,
        403: Error,
        404: Error,
        409: UploadOut,
        413: Error,
        **COMMON,
    },
    tags=["documents"],
)
def documents_upload(
    request: ApiRequest,
    file: list[UploadedFile] = File(...),
    library: int | None = Form(None, ge=1, le=ID_MAX),
) -> Status[UploadOut]:
    """Upload one or several PDFs (repeat the multipart field `file`); each is queued, in the
    library `library` (one where you are an editor or owner; default: your personal one).

    201 when at least one was stored; else 409 when every file was one the library holds
    already (`duplicate_of` names its document of it), 400 when any was refused otherwise.
    403 when you may only read the library, 404 when it is not one of yours. 413 when the
    request or a file is larger than the limit."""
    target = _upload_library(request, library)
    created, rejected = [], []
    for upload in file:
        try:
            document = document_upload(owner=request.auth, upload=upload, library=target)
        except UploadRejected as exc:
            rejected.append(
                Rejection(
                    file_name=upload.name or "",
                    reason=exc.reason,
                    duplicate_of=exc.duplicate_of.id if exc.duplicate_of else None,
                )
            )
        else:
            created.append(DocumentOut.from_document(document))
    if created:
        status = 201
    elif all(rejection.duplicate_of for rejection in rejected):
        status = 409
    else:
        status = 400
    return Status(status, UploadOut(documents=created, rejected=rejected))


@api.get("/documents", response={200: DocumentList, **COMMON}, tags=["documents"])
def documents_list(request: ApiRequest, params: Query[ListParams]) -> DocumentList:
    documents = documents_visible(user=request.auth).order_by("-created_at")
    if params.library is not None:
        documents = documents.filter(library_id=params.library)
    if params.sha256:
        documents = documents.filter(sha256=params.sha256)
    if params.tag:
        documents = documents_tagged(documents=documents, name=params.tag)
    documents = documents.prefetch_related("tags")
    window = list(documents[params.offset : params.offset + params.limit])
    progress = documents_progress(window, viewer=request.auth)
    return DocumentList(
        documents=[DocumentOut.from_document(doc, progress[doc.id]) for doc in window],
        count=documents.count(),
    )


@api.get(
    "/documents/{document_id}",
    response={200: DocumentOut, 404: Error, **COMMON},
    tags=["documents"],
)
def documents_get(request: ApiRequest, document_id: uuid.UUID) -> DocumentOut:
    return DocumentOut.from_document(_document_get(request, document_id))


@api.put(
    "/documents/{document_id}/tags",
    response={200: DocumentOut, 400: Error, 403: Error, 404: Error, **COMMON},
    tags=["documents"],
)
def documents_tags_set(request: ApiRequest, document_id: uuid.UUID, body: TagsIn) -> Status[Any]:
    """Set the document's tags: exactly those named (an empty list takes all off)."""
    document = _document_for_change(request, document_id)
    try:
        document_tags_set(document=document, names=body.tags, user=request.auth)
    except TagRejected as exc:
        return Status(400, Error(detail=str(exc)))
    return Status(200, DocumentOut.from_document(document))


@api.post(
    "/documents/{document_id}/retry",
    response={202: DocumentOut, 403: Error, 404: Error, 409: Error, **COMMON},
    tags=["documents"],
)
def documents_retry(request: ApiRequest, document_id: uuid.UUID) -> Status[Any]:
    document = _document_for_change(request, document_id)
    if not document_retry(document=document):
        return Status(409, Error(detail="The document is already queued or processing."))
    document.refresh_from_db()
    return Status(202, DocumentOut.from_document(document))


@api.post(
    "/documents/{document_id}/cancel",
    response={200: DocumentOut, 403: Error, 404: Error, 409: Error, **COMMON},
    tags=["documents"],
)
def documents_cancel(request: ApiRequest, document_id: uuid.UUID) -> Status[Any]:
    """Stop a queued or processing document; its pages leave search. Retry takes it up again."""
    document = _document_for_change(request, document_id)
    if not document_cancel(document=document):
        return Status(409, Error(detail="The document has already finished."))
    document.refresh_from_db()
    return Status(200, DocumentOut.from_document(document))


@api.delete(
    "/documents/{document_id}",
    response={204: None, 403: Error, 404: Error, 503: Error, **COMMON},
    tags=["documents"],
)
def documents_delete(request: ApiRequest, document_id: uuid.UUID) -> Status[Any]:
    document = _document_for_change(request, document_id)
    try:
        document_delete(document=document)
    except WeaviateUnavailable:
        return Status(503, Error(detail="The search index is not reachable; nothing was deleted."))
    return Status(204, None)


@api.get("/search", response={200: SearchOut, 400: Error, 503: Error, **COMMON}, tags=["search"])
def search(request: ApiRequest, params: Query[SearchParams]) -> Status[Any]:
    """Pages of your libraries' documents ranked for `q`: vector (semantic), hybrid or
    keyword; or, when `q` is empty, for the image `image` sent before to POST /search/image
    (semantic). `library` narrows to one of your libraries."""
    query = params.q.strip()
    image = None
    if not query and params.image is not None:
        image = QueryImage.objects.filter(id=params.image, owner=request.auth).first()
        if image is None:
            return Status(
                400,
                Error(
                    detail="The image `image` is no longer kept (images are kept a week): "
                    "send it again to POST /api/search/image."
                ),
            )
    elif not query:
        return Status(400, Error(detail="The query `q` is empty."))
    try:
        response = page_results_search(
            user=request.auth,
            query=query[:500],
            library_id=params.library,
            mode=params.mode,
            limit=params.limit,
            document_id=params.document_id,
            document_ids=_tagged_scope(request, params.tag),
            image=image,
        )
    except QueryRejected as exc:
        return Status(400, Error(detail=str(exc)))
    except SearchUnavailable as exc:
        return Status(503, Error(detail=str(exc)))
    return Status(200, _search_out(request, response, query=query, mode=params.mode, image=image))


@api.post(
    "/search/image",
    response={200: SearchOut, 400: Error, 413: Error, 503: Error, **COMMON},
    tags=["search"],
)
def search_image(
    request: ApiRequest, params: Query[ImageSearchParams], file: UploadedFile = File(...)
) -> Status[Any]:
    """Pages of your libraries' documents ranked for an image (multipart field `file`: a
    screenshot or a photo of a page; PNG, JPEG, WebP, GIF, BMP or TIFF), searched semantically
    as a page is embedded. The answer's `image_id` searches with it again through GET /search."""
    data = file.read(MAX_BYTES + 1)
    try:
        image = query_image_create(owner=request.auth, data=data)
        response = page_results_search(
            user=request.auth,
            query="",
            library_id=params.library,
            mode=SearchMode.VECTOR,
            limit=params.limit,
            document_id=params.document_id,
            document_ids=_tagged_scope(request, params.tag),
            image=image,
        )
    except QueryRejected as exc:
        return Status(413 if len(data) > MAX_BYTES else 400, Error(detail=str(exc)))
    except SearchUnavailable as exc:
        return Status(503, Error(detail=str(exc)))
    return Status(
        200, _search_out(request, response, query="", mode=SearchMode.VECTOR, image=image)
    )


def _tagged_scope(request: ApiRequest, tag: str | None) -> list[uuid.UUID] | None:
    """Your libraries' documents with a tag named `tag` (None: no tag asked, all documents)."""
    return search_scope(user=request.auth, tags=[tag]) if tag else None


def _search_out(
    request: ApiRequest,
    response: SearchResponse,
    *,
    query: str,
    mode: SearchMode,
    image: QueryImage | None,
) -> SearchOut:
    hits = []
    for result in response.results:
        page = result.page
        args = [page.document_id, page.number]
        hits.append(
            SearchHitOut(
                document_id=page.document_id,
                title=page.document.title,
                page_number=page.number,
                score=result.score,
                thumbnail_url=request.build_absolute_uri(
                    reverse("documents:page_thumbnail", args=args)
                ),
                image_url=request.build_absolute_uri(reverse("documents:page_image", args=args)),
                page_url=request.build_absolute_uri(reverse("documents:page", args=args)),
            )
        )
    return SearchOut(
        query=query,
        mode=SearchMode.VECTOR if image is not None else mode,
        milliseconds=round(response.seconds * 1000),
        results=hits,
        image_id=None if image is None else image.id,
    )


def _login_not_required(patterns: list[URLPattern | URLResolver]) -> list[Any]:
    # The API authenticates with bearer tokens; the session-login middleware must let it through.
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback.login_required = False  # type: ignore[attr-defined]
        else:
            _login_not_required(pattern.url_patterns)
    return patterns


def api_urls() -> tuple[list[Any], str, str]:
    patterns, app_name, namespace = api.urls
    return _login_not_required(list(patterns)), app_name, namespace
