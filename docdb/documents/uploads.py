"""Uploads larger than the limit are refused before their bytes are stored.

Django reads a request body only up to its Content-Length (and nothing without one), so a
request whose Content-Length is over the limit is answered 413 at once, before anything reads
it. One request may carry many files (the API, the form without scripts): while the body
streams, `UploadSizeLimitHandler` counts each file's bytes and stops the upload as soon as one
is over the limit, rather than after it was written to disk in full.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat

# Room for the multipart boundaries, part headers and other fields around the files.
_MULTIPART_OVERHEAD_BYTES = 1024 * 1024

View = TypeVar("View", bound=Callable[..., Any])


class UploadTooLarge(MultiPartParserError):
    """A file in the request is larger than DOCDB_UPLOAD_MAX_MB (raised while it streams)."""


def too_large_message() -> str:
    return f"The upload is larger than the {filesizeformat(settings.UPLOAD_MAX_BYTES)} limit."


def upload_files(count: int) -> Callable[[View], View]:
    """Marks a view that takes at most `count` files a request (the limit on its body)."""

    def mark(view: View) -> View:
        view.upload_max_files = count  # type: ignore[attr-defined]
        return view

    return mark


class UploadSizeLimitHandler(FileUploadHandler):
    """First of FILE_UPLOAD_HANDLERS: counts each file's bytes and passes them on."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.UPLOAD_MAX_BYTES:
            limit = filesizeformat(settings.UPLOAD_MAX_BYTES)
            raise UploadTooLarge(f"{self.file_name}: the file is larger than the {limit} limit.")
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler makes the file


def _is_api(request: HttpRequest) -> bool:
    match = request.resolver_match
    return match is not None and match.namespace == "api"


def _wants_json(request: HttpRequest) -> bool:
    return _is_api(request) or "application/json" in request.headers.get("Accept", "")


def too_large_response(request: HttpRequest, reason: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": reason, "error": reason}, status=413)
    context = {"reason": reason, "max_upload_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024)}
    return render(request, "documents/upload_too_large.html", context, status=413)


class UploadLimitMiddleware:
    """Answers an upload over the limit with 413 before the view, or anything else, reads it.

    Placed before CsrfViewMiddleware, whose check reads the form: for the web pages the body is
    parsed here, so a file found too large while streaming is answered with the same page. The
    API parses its own body, and answers with JSON (docdb/api/views.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if request.method not in ("POST", "PUT", "PATCH"):
            return None
        files = getattr(view, "upload_max_files", settings.UPLOAD_MAX_FILES)
        limit = files * settings.UPLOAD_MAX_BYTES + _MULTIPART_OVERHEAD_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads no body then either
        if length > limit:
            return too_large_response(request, too_large_message())
        if _is_api(request) or request.content_type != "multipart/form-data":
            return None
        try:
            request.FILES  # noqa: B018 - parse now, counting each file's bytes as it streams
        except UploadTooLarge as exc:
            return too_large_response(request, str(exc))
        return None
