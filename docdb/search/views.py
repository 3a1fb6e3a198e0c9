from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from docdb.documents.requests import AuthenticatedRequest
from docdb.search.services import SearchUnavailable, page_results_search
from docdb.weaviate_store import SearchMode

MODES = [
    (SearchMode.VECTOR, "Semantic"),
    (SearchMode.HYBRID, "Hybrid"),
    (SearchMode.KEYWORD, "Keyword"),
]


@require_GET
def search(request: AuthenticatedRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:500]
    try:
        mode = SearchMode(request.GET.get("mode", SearchMode.VECTOR))
    except ValueError:
        mode = SearchMode.VECTOR
    context: dict[str, object] = {"query": query, "mode": mode, "modes": MODES}
    if query:
        try:
            response = page_results_search(user=request.user, query=query, mode=mode)
        except SearchUnavailable as exc:
            context["error"] = str(exc)
        else:
            context["results"] = response.results
            context["milliseconds"] = round(response.seconds * 1000)
    context["has_documents"] = request.user.documents.exists()
    return render(request, "search/search.html", context)
