import uuid
from dataclasses import asdict

from django.conf import settings
from django.db.models.functions import Lower
from django.http import HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from docdb.documents.libraries import documents_visible, libraries_visible, library_choices
from docdb.documents.models import Document, Page, Status
from docdb.documents.requests import AuthenticatedRequest
from docdb.documents.tags import tags_of
from docdb.search.forms import MODES, ImageSearchForm, SearchForm
from docdb.search.maps import MapsUnavailable, page_maps_make
from docdb.search.models import QueryImage
from docdb.search.query_images import MAX_BYTES, query_image_create
from docdb.search.services import (
    PAGE_SIZE,
    QueryRejected,
    SearchUnavailable,
    page_similar_search,
    search_run,
)
from docdb.weaviate_store import SearchMode

# A search chooses a handful of documents; the address would not carry many more.
MAX_CHOSEN_DOCUMENTS = 100


def _page_get(request: AuthenticatedRequest, document_id: uuid.UUID, number: int) -> Page:
    # A page of a library the person is not a member of answers 404, exactly like one that
    # does not exist.
    return get_object_or_404(
        Page.objects.select_related("document"),
        document__in=documents_visible(user=request.user),
        document_id=document_id,
        number=number,
    )


# The filters a search by image keeps from the search page's form.
FILTER_PARAMS = ("document", "tag", "library", "date_from", "date_to")


def _form_state(request: AuthenticatedRequest) -> dict[str, object]:
    """The form as typed, to show it again even when a field did not validate."""
    params = request.GET if request.method == "GET" else request.POST
    mode = params.get("mode", SearchMode.VECTOR)
    documents = params.getlist("document")
    tags = params.getlist("tag")
    library = params.get("library", "")
    dates = (params.get("date_from", ""), params.get("date_to", ""))
    return {
        "q": params.get("q", ""),
        "mode": mode if mode in {value for value, _ in MODES} else SearchMode.VECTOR,
        "alpha": params.get("alpha") or "0.5",
        "documents": set(documents),
        "tags": set(tags),
        "library": library,
        "date_from": dates[0],
        "date_to": dates[1],
        "filtered": bool(documents or tags or library or any(dates)),
    }


def _query_with(request: AuthenticatedRequest, **changes: str | None) -> str:
    params = request.GET.copy()
    params.pop("partial", None)
    for key, value in changes.items():
        params.pop(key, None)
        if value is not None:
            params[key] = value
    return params.urlencode()


def _page_context(request: AuthenticatedRequest, form: SearchForm) -> dict[str, object]:
    documents = documents_visible(user=request.user)
    libraries = library_choices(libraries_visible(user=request.user), viewer=request.user)
    return {
        "form": form,
        "modes": MODES,
        "state": _form_state(request),
        "has_documents": documents.exists(),
        "has_ready": documents.filter(status=Status.READY).exists(),
        # The documents the filter has chosen; more are found by title as one types.
        "chosen_documents": _chosen_documents(request),
        "filter_tags": tags_of(user=request.user),
        # The library filter shows only to a person with several.
        "filter_libraries": libraries if len(libraries) > 1 else [],
        "image_max_mb": MAX_BYTES // 1024 // 1024,
    }


def _chosen_documents(request: AuthenticatedRequest) -> list[Document]:
    params = request.GET if request.method == "GET" else request.POST
    ids = []
    for raw in params.getlist("document")[:MAX_CHOSEN_DOCUMENTS]:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            continue
    # Only documents of the person's libraries: any other id shows nothing, as the form
    # refuses it.
    chosen = documents_visible(user=request.user).filter(id__in=ids)
    return list(chosen.order_by(Lower("title"), "id"))


@require_GET
def search(request: AuthenticatedRequest) -> HttpResponse:
    form = SearchForm(request.GET, user=request.user)
    context = _page_context(request, form)
    # A partial answer's status; the full page explains an error itself.
    status = 200
    if form.is_valid() and form.searched():
        criteria = form.criteria()
        context["criteria"] = criteria
        context["mode_label"] = dict(MODES)[criteria.mode]
        try:
            response = search_run(user=request.user, criteria=criteria)
        except QueryRejected as exc:
            context["error_title"] = "This query cannot be searched."
            context["error"] = str(exc)
            status = 400
        except SearchUnavailable as exc:
            context["error_title"] = "Search is unavailable."
            context["error"] = str(exc)
            status = 503
        else:
            first_rank = (criteria.page - 1) * PAGE_SIZE + 1
            context["results"] = response.results
            context["best_score"] = response.best_score
            context["milliseconds"] = round(response.seconds * 1000)
            context["first_rank"] = first_rank
            context["last_rank"] = first_rank + len(response.results) - 1
            context["first_page_query"] = _query_with(request, page=None)
            if response.has_more:
                context["more_url"] = "?" + _query_with(request, page=str(criteria.page + 1))
    if request.GET.get("partial"):
        # "More results" asks for the next cards alone, to append them; on an error the script
        # opens the full page instead, which explains it.
        return render(request, "search/_results.html", context, status=status)
    return render(request, "search/search.html", context)


@require_POST
def image_search(request: AuthenticatedRequest) -> HttpResponse:
    """A search by image: the image is embedded and kept, then the search page shows its
    results at an address of its own (so "More results", reloads and links work)."""
    upload = ImageSearchForm(request.POST, request.FILES)

    def refused(title: str, error: str, status: int) -> HttpResponse:
        # The search page again, with the reason; built only when the image is refused.
        context = _page_context(request, SearchForm(user=request.user))
        context.update(error_title=title, error=error)
        return render(request, "search/search.html", context, status=status)

    if not upload.is_valid():
        return refused(
            "No image was sent.", "Choose an image file, or paste one into the page.", 400
        )
    # One byte past the limit is enough to refuse the file with its limit.
    data = upload.cleaned_data["image"].read(MAX_BYTES + 1)
    try:
        image = query_image_create(owner=request.user, data=data)
    except QueryRejected as exc:
        return refused("This image cannot be searched with.", str(exc), 400)
    except SearchUnavailable as exc:
        return refused("Search is unavailable.", str(exc), 503)
    params = QueryDict(mutable=True)
    for key in FILTER_PARAMS:
        params.setlist(key, [value for value in request.POST.getlist(key) if value])
    params["image"] = str(image.id)
    return redirect(f"{reverse('search:search')}?{params.urlencode()}")


@require_GET
def query_image(request: AuthenticatedRequest, image_id: uuid.UUID) -> HttpResponse:
    """The image a person searched with, shown beside its results; only to that person."""
    image = get_object_or_404(QueryImage, id=image_id, owner=request.user)
    response = HttpResponse(bytes(image.jpeg), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
def page_similar(
    request: AuthenticatedRequest, document_id: uuid.UUID, number: int
) -> HttpResponse:
    page = _page_get(request, document_id, number)
    context: dict[str, object] = {"page": page}
    try:
        context["results"] = page_similar_search(user=request.user, page=page)
    except SearchUnavailable as exc:
        context["error"] = str(exc)
    return render(request, "search/_similar.html", context)


@require_GET
def page_maps(request: AuthenticatedRequest, document_id: uuid.UUID, number: int) -> JsonResponse:
    page = _page_get(request, document_id, number)
    query = " ".join(request.GET.get("q", "").split())[:500]
    if not query:
        return JsonResponse({"error": "Type a query to see which regions match it."}, status=400)
    try:
        maps = page_maps_make(page=page, query=query)
    except MapsUnavailable as exc:
        # 200 with a reason: the control shows it; nothing is broken on the person's side.
        return JsonResponse({"error": str(exc), "cloud": settings.WEAVIATE_CLOUD})
    return JsonResponse(asdict(maps))
