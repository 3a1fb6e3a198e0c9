import time
import uuid
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Q

from docdb.documents.models import Page, Status
from docdb.weaviate_store import SearchMode, WeaviateUnavailable, pages_search

MAX_LIMIT = 100


class SearchUnavailable(Exception):
    """The search backend is down; the message is fit to show."""


@dataclass(frozen=True)
class SearchResult:
    page: Page
    score: float


@dataclass(frozen=True)
class SearchResponse:
    results: list[SearchResult]
    seconds: float


def page_results_search(
    *,
    user: User,
    query: str,
    mode: SearchMode,
    limit: int = 24,
    document_id: uuid.UUID | None = None,
) -> SearchResponse:
    """The user's pages ranked for `query`, as Page rows with their scores."""
    started = time.monotonic()
    limit = max(1, min(limit, MAX_LIMIT))
    try:
        hits = pages_search(
            owner_id=user.pk, query=query, mode=mode, limit=limit, document_id=document_id
        )
    except WeaviateUnavailable as exc:
        raise SearchUnavailable(
            "Search is unavailable right now: the search index did not answer. "
            "Try again in a moment."
        ) from exc
    # Weaviate filtered by owner already; joining on the owner's own rows is the second lock,
    # and drops pages of documents deleted or failed since they were indexed.
    if not hits:
        return SearchResponse(results=[], seconds=time.monotonic() - started)
    wanted = Q()
    for hit in hits:
        wanted |= Q(document_id=hit.document_id, number=hit.page_number)
    pages = (
        Page.objects.select_related("document")
        .filter(wanted, document__owner=user, document__status=Status.READY)
        .defer("text")
    )
    by_key = {(page.document_id, page.number): page for page in pages}
    results = [
        SearchResult(page=by_key[(hit.document_id, hit.page_number)], score=hit.score)
        for hit in hits
        if (hit.document_id, hit.page_number) in by_key
    ]
    return SearchResponse(results=results, seconds=time.monotonic() - started)
