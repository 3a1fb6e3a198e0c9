import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from django.contrib.auth.models import User

from docdb.documents.libraries import documents_visible, library_ids_visible
from docdb.documents.models import Page, Status
from docdb.documents.tags import documents_tagged
from docdb.search.models import QueryImage
from docdb.search.snippets import Snippet, query_terms, snippet_make
from docdb.weaviate_store import (
    PageHit,
    QueryRefused,
    SearchMode,
    TieKeys,
    WeaviateUnavailable,
    page_multivector,
    pages_ranked,
    pages_similar,
)

MAX_LIMIT = 100
PAGE_SIZE = 24
# Weaviate answers at most QUERY_MAXIMUM_RESULTS (10 000) results past the offset.
MAX_OFFSET = 5000


class SearchUnavailable(Exception):
    """The search backend is down; the message is fit to show."""


class QueryRejected(Exception):
    """The query cannot be searched as it is (too long for the model); the message is fit to
    show."""


@dataclass(frozen=True)
class SearchResult:
    page: Page
    score: float
    snippet: Snippet = field(default_factory=list)


@dataclass(frozen=True)
class SearchResponse:
    results: list[SearchResult]
    seconds: float
    has_more: bool = False
    # The score of the first result of the whole ranking (also when this is a later window):
    # what the search page shows scores relative to.
    best_score: float | None = None


def score_share(score: float, best: float | None) -> float:
    """A score as a share of the best result's, 0 to 1: what a person can read, where raw
    scores range as each mode makes them (semantic MaxSim ~10 to ~200 with the query's length,
    BM25 unbounded, hybrid fused 0 to 1)."""
    if best is None or best <= 0:
        return 0.0
    return min(1.0, max(0.0, score / best))


@dataclass(frozen=True)
class SearchCriteria:
    """What the search page asks for: a query (words, or an image searched semantically), a
    mode and optional filters."""

    query: str
    mode: SearchMode = SearchMode.VECTOR
    alpha: float = 0.5  # hybrid only: 0 is keyword alone, 1 vector alone
    document_ids: tuple[uuid.UUID, ...] = ()
    # Tag names of the person's libraries: documents carrying any of them.
    tags: tuple[str, ...] = ()
    # One of the person's libraries to search alone (None: all of them).
    library_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1
    image: QueryImage | None = None


def search_run(*, user: User, criteria: SearchCriteria) -> SearchResponse:
    """One page of results for the search page, with snippets where words matter."""
    scope = search_scope(
        user=user,
        document_ids=criteria.document_ids,
        tags=criteria.tags,
        date_from=criteria.date_from,
        date_to=criteria.date_to,
    )
    return page_results_search(
        user=user,
        library_id=criteria.library_id,
        query=criteria.query,
        mode=criteria.mode,
        limit=PAGE_SIZE,
        document_ids=scope,
        alpha=criteria.alpha,
        offset=(criteria.page - 1) * PAGE_SIZE,
        snippets=criteria.mode != SearchMode.VECTOR,
        image=criteria.image,
    )


def search_scope(
    *,
    user: User,
    document_ids: Sequence[uuid.UUID] = (),
    tags: Sequence[str] = (),
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[uuid.UUID] | None:
    """The documents of the user's libraries a search is limited to, or None for all of them.

    Filters are resolved in the database and handed to Weaviate as document ids, so the
    collection needs no upload dates or tags of its own. Tags are looked up among the user's
    libraries' documents only: another library's tag name matches nothing.
    """
    if not document_ids and not tags and date_from is None and date_to is None:
        return None
    visible = documents_visible(user=user)
    documents = visible
    if document_ids:
        documents = documents.filter(id__in=document_ids)
    if tags:
        tagged = visible.none()
        for name in tags:
            tagged = tagged | documents_tagged(documents=visible, name=name)
        documents = documents.filter(id__in=tagged.values("id"))
    if date_from is not None:
        documents = documents.filter(created_at__date__gte=date_from)
    if date_to is not None:
        documents = documents.filter(created_at__date__lte=date_to)
    return list(documents.values_list("id", flat=True).distinct())


def _library_ids(user: User, library_id: int | None) -> list[int]:
    """The libraries a search spans: the person's, or the one of them asked for."""
    visible = library_ids_visible(user=user)
    if library_id is None:
        return visible
    return [library_id] if library_id in visible else []


def page_results_search(
    *,
    user: User,
    query: str,
    library_id: int | None = None,
    mode: SearchMode,
    limit: int = 24,
    document_id: uuid.UUID | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    alpha: float = 0.5,
    offset: int = 0,
    snippets: bool = False,
    image: QueryImage | None = None,
) -> SearchResponse:
    """The pages of the user's libraries (or of one of them, `library_id`) ranked for `query`,
    or for `image` (semantically), as Page rows with their scores.

    `snippets` adds the piece of each page's text around the query's words (keyword and
    hybrid search match on them). One more hit than asked for tells whether there are more.
    """
    started = time.monotonic()
    limit = max(1, min(limit, MAX_LIMIT))
    if image is not None and image.owner_id != user.pk:
        raise QueryRejected("This search image belongs to someone else.")
    if image is not None:
        # An image has no words: it is searched as semantic search searches a query's vectors.
        query, mode, snippets = "", SearchMode.VECTOR, False
    library_ids = _library_ids(user, library_id)
    try:
        ranking = pages_ranked(
            library_ids=library_ids,
            query=query,
            mode=mode,
            limit=limit + 1,
            document_id=document_id,
            document_ids=document_ids,
            alpha=min(1.0, max(0.0, alpha)),
            offset=max(0, min(offset, MAX_OFFSET)),
            tie_keys=page_order_keys(library_ids=library_ids),
            query_vector=None if image is None else image.multivector(),
            query_image=None if image is None or image.dimensions else bytes(image.jpeg),
        )
    except QueryRefused as exc:
        raise QueryRejected(f"The model refused it: {exc}") from exc
    except WeaviateUnavailable as exc:
        raise SearchUnavailable(
            "Search is unavailable right now: the search index did not answer. "
            "Try again in a moment."
        ) from exc
    hits = ranking.hits
    terms = query_terms(query) if snippets else None
    results = _results(library_ids, hits[:limit], snippet_terms=terms)
    return SearchResponse(
        results=results,
        seconds=time.monotonic() - started,
        has_more=len(hits) > limit,
        best_score=ranking.best_score,
    )


def page_order_keys(*, library_ids: Sequence[int]) -> TieKeys:
    """How pages of equal score are ordered: by document, then page number (from the rows)."""

    def keys(search_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int]]:
        rows = Page.objects.filter(
            search_id__in=search_ids, document__library_id__in=library_ids
        ).values_list("search_id", "document_id", "number")
        return {
            search_id: (str(document_id), number)
            for search_id, document_id, number in rows
            if search_id is not None
        }

    return keys


def page_similar_search(*, user: User, page: Page, limit: int = 8) -> list[SearchResult]:
    """The pages of the person's libraries whose embeddings are closest to this page's own (it
    left out); the caller checked that the person sees the page."""
    library_ids = library_ids_visible(user=user)
    try:
        vector = page_multivector(
            library_ids=library_ids, document_id=page.document_id, page_number=page.number
        )
        if not vector:
            return []
        hits = pages_similar(
            library_ids=library_ids,
            vector=vector,
            exclude_document_id=page.document_id,
            exclude_page_number=page.number,
            limit=limit,
            tie_keys=page_order_keys(library_ids=library_ids),
        )
    except WeaviateUnavailable as exc:
        raise SearchUnavailable(
            "Similar pages are unavailable: the search index did not answer."
        ) from exc
    return _results(library_ids, hits, snippet_terms=None)


def _results(
    library_ids: Sequence[int], hits: list[PageHit], *, snippet_terms: list[str] | None
) -> list[SearchResult]:
    # Weaviate filtered by library already; joining on those libraries' rows (read afresh from
    # the memberships) is the second lock, and drops pages of documents deleted, failed or
    # moved out since they were indexed.
    if not hits:
        return []
    pages = Page.objects.select_related("document").filter(
        search_id__in=[hit.object_id for hit in hits],
        document__library_id__in=library_ids,
        document__status=Status.READY,
    )
    if snippet_terms is None:
        pages = pages.defer("text")
    by_id = {page.search_id: page for page in pages}
    results = []
    for hit in hits:
        page = by_id.get(hit.object_id)
        if page is None:
            continue
        snippet = snippet_make(page.text, snippet_terms) if snippet_terms is not None else []
        results.append(SearchResult(page=page, score=hit.score, snippet=snippet))
    return results
