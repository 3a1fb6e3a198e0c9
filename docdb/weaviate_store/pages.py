import base64
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
from django.conf import settings
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.collections import Collection
from weaviate.collections.classes.filters import _Filters
from weaviate.util import generate_uuid5

from docdb.embedder_client import (
    EmbedderError,
    EmbedderRefused,
    MultiVector,
    images_embed,
    query_embed,
)
from docdb.pooling import POOL_SIZE_DEFAULT, multivector_pool
from docdb.weaviate_store.client import (
    WeaviateImportError,
    WeaviateUnavailable,
    collection_get,
    weaviate_errors,
)
from docdb.weaviate_store.schema import POOLED_VECTOR_NAME, VECTOR_NAME, vectorize_client_side

# Search results are object ids alone, which DocDB maps to its Page rows (Page.search_id).
# Asking for any property makes Weaviate read the whole stored object, page image included
# (~0.5 MB with server-side vectors): 25 keyword results took 43 ms instead of 1.4.
_RESULT_PROPERTIES: list[str] = []
# Weaviate deletes at most QUERY_MAXIMUM_RESULTS objects per delete_many call.
_DELETE_ROUNDS = 100
# What keyword search (and hybrid search's keyword half) matches.
_KEYWORD_PROPERTIES = ("text", "title")
# How long a process trusts what it last read of the collection's named vectors.
_VECTOR_NAMES_TTL_SECONDS = 10.0
_vector_names_seen: dict[str, tuple[float, frozenset[str]]] = {}


class SearchMode(StrEnum):
    VECTOR = "vector"
    HYBRID = "hybrid"
    KEYWORD = "keyword"


@dataclass(frozen=True)
class PageObject:
    document_id: uuid.UUID
    # Who uploaded the page's document (or was given it: `documents.people`); not what
    # deletion goes by.
    owner_id: int
    # The library holding the document: what searches filter by.
    library_id: int
    title: str
    file_name: str
    page_number: int
    text: str
    image_jpeg: bytes
    # Client-side vectors: the page's multi-vector when already computed (else embedded here).
    vectors: Sequence[Sequence[float]] | None = None


@dataclass(frozen=True)
class PageHit:
    """A page found: its object id (`page_uuid`, also Page.search_id) and its score."""

    object_id: uuid.UUID
    score: float


def page_uuid(document_id: uuid.UUID, page_number: int) -> str:
    """Deterministic object id, so importing a page twice overwrites instead of duplicating."""
    return str(generate_uuid5(f"{document_id}:{page_number}"))


def _collection(*, write: bool = False) -> Collection:
    return collection_get(write=write)


@weaviate_errors("Weaviate import failed")
def pages_upsert(pages: list[PageObject]) -> None:
    """Import pages. Raises if any object failed.

    Server-side vectors: Weaviate sends each image to the embedder. Client-side: the pages'
    images go to the embedder in large batches first (unless `vectors` are given), and Weaviate
    stores the vectors and no image.
    """
    collection = _collection(write=True)
    client_side = vectorize_client_side()
    pooled_size = 0
    if client_side:
        missing = [page for page in pages if page.vectors is None]
        try:
            embedded = iter(images_embed([page.image_jpeg for page in missing]))
        except EmbedderError as exc:
            # The embedder stands where Weaviate's vectorizer module does in server mode: its
            # failures are the index's, which the pipeline retries later.
            raise WeaviateUnavailable(str(exc)) from exc
        pages = [
            page if page.vectors is not None else replace(page, vectors=next(embedded))
            for page in pages
        ]
        # Read afresh: a page left without its pooled vector would be invisible to search.
        if POOLED_VECTOR_NAME in _vector_names(collection, fresh=True):
            pooled_size = settings.WEAVIATE_POOLED_VECTORS or POOL_SIZE_DEFAULT
    objects = []
    for page in pages:
        properties: dict[str, Any] = {
            "document_id": str(page.document_id),
            "owner_id": page.owner_id,
            "library_id": page.library_id,
            "title": page.title,
            "file_name": page.file_name,
            "page_number": page.page_number,
            "text": page.text,
        }
        vector: dict[str, Any] | None = None
        if client_side:
            vector = {VECTOR_NAME: _plain_lists(page.vectors or [])}
            if pooled_size:
                full = np.asarray(page.vectors, dtype=np.float32)
                vector[POOLED_VECTOR_NAME] = multivector_pool(full, pooled_size).tolist()
        else:
            properties["image"] = base64.b64encode(page.image_jpeg).decode("ascii")
        objects.append(
            DataObject(
                properties=properties,
                uuid=page_uuid(page.document_id, page.page_number),
                vector=vector,
            )
        )
    # One request per WEAVIATE_IMPORT_BATCH_SIZE pages, each answered or failed within the
    # insert timeout: insert_many retries a node that is away a few seconds (2 retries), where
    # the client's background batching retries it for up to ~17 minutes (WEAVIATE_BATCH_MAX_RETRIES,
    # exponential), which held a turn, and its document, long after a cluster node died. A
    # failure here goes to the error boundary and the pipeline's own retries.
    size = max(1, settings.WEAVIATE_IMPORT_BATCH_SIZE)
    for start in range(0, len(objects), size):
        answer = collection.data.insert_many(objects[start : start + size])
        if answer.errors:
            first = next(iter(answer.errors.values()))
            raise WeaviateImportError(
                f"{len(answer.errors)} of {len(pages)} pages were not indexed: {first.message}"
            )


def _plain_lists(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    # The client flattens a multi-vector element by element: lists of floats are several
    # times faster to pack than rows of a numpy array.
    tolist = getattr(vectors, "tolist", None)
    return tolist() if tolist is not None else [list(row) for row in vectors]


def _owner_filter(owner_id: int, document_id: uuid.UUID | None = None) -> _Filters:
    owner = Filter.by_property("owner_id").equal(owner_id)
    if document_id is None:
        return owner
    return owner & Filter.by_property("document_id").equal(str(document_id))


def _library_filter(library_ids: Sequence[int]) -> _Filters:
    """Pages of these libraries (never an empty list: Weaviate refuses ContainsAny of none)."""
    return Filter.by_property("library_id").contains_any(list(library_ids))


def _search_filter(
    library_ids: Sequence[int],
    document_id: uuid.UUID | None,
    document_ids: Sequence[uuid.UUID] | None,
) -> _Filters:
    filters = _library_filter(library_ids)
    if document_id is not None:
        filters = filters & Filter.by_property("document_id").equal(str(document_id))
    if document_ids is not None:
        filters = filters & Filter.by_property("document_id").contains_any(
            [str(value) for value in document_ids]
        )
    return filters


def pages_delete(*, document_id: uuid.UUID) -> int:
    """Delete every object of one document; returns how many went.

    By the document's id alone: an object's `owner_id` is who uploaded the document when the
    page was indexed, and the document may have passed to someone else since (its uploader's
    account deleted: `documents.people`).
    """
    where = Filter.by_property("document_id").equal(str(document_id))
    return _objects_delete(where, document_id=document_id)


@weaviate_errors("Weaviate delete failed")
def _objects_delete(where: _Filters, *, document_id: uuid.UUID) -> int:
    """Delete what `where` matches, in rounds (each deletes at most QUERY_MAXIMUM_RESULTS)."""
    collection = _collection(write=True)
    deleted = 0
    for _ in range(_DELETE_ROUNDS):
        result = collection.data.delete_many(where=where)
        deleted += result.successful
        if result.matches == 0:
            return deleted
    raise WeaviateUnavailable(f"Document {document_id} still has objects after deleting")


@weaviate_errors("Weaviate count failed")
def pages_count(
    *,
    owner_id: int | None = None,
    document_id: uuid.UUID | None = None,
    library_id: int | None = None,
) -> int:
    collection = _collection()
    filters: _Filters | None = None
    if owner_id is not None:
        filters = _owner_filter(owner_id, document_id)
    elif document_id is not None:
        filters = Filter.by_property("document_id").equal(str(document_id))
    if library_id is not None:
        library = Filter.by_property("library_id").equal(library_id)
        filters = library if filters is None else filters & library
    result = collection.aggregate.over_all(filters=filters, total_count=True)
    return result.total_count or 0


# Weaviate answers at most QUERY_MAXIMUM_RESULTS results, the offset included.
_MAX_RESULTS = 10_000
# Asked for past a window, so that a run of equal scores at its end is mostly seen in one call.
_TIE_MARGIN = 8

# The (document id, page number) of object ids: how pages of equal score are ordered. The
# search service reads them from DocDB's rows, which Weaviate would only give by reading whole
# objects (page images included).
TieKeys = Callable[[Sequence[uuid.UUID]], Mapping[uuid.UUID, tuple[str, int]]]
# Ids without a page row go after those with one, in id order.
_NO_KEY = ("\uffff", 0)


def _no_tie_keys(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, tuple[str, int]]:
    return {}


@dataclass(frozen=True)
class Ranking:
    """A window of ranked pages, and the score of the first page of the whole ranking."""

    hits: list[PageHit]
    best_score: float | None


@dataclass(frozen=True)
class _Search:
    """One search, as every mode's function takes it."""

    collection: Collection
    query: str
    # The query's multi-vector when DocDB embedded it (self-hosted); None: Weaviate embeds.
    vector: Sequence[Sequence[float]] | None
    filters: _Filters | None
    limit: int
    offset: int
    alpha: float
    tie_keys: TieKeys
    # Two-stage search ranks its first-stage candidates in tiers of this many.
    tier: int = 40
    # A query image (base64 JPEG) for Weaviate to embed, instead of the text (Cloud).
    image: str | None = None

    @property
    def wanted(self) -> int:
        return self.limit + self.offset

    def window(self, ranked: Sequence[PageHit | None]) -> Ranking:
        """The asked-for slice of a ranking; None stands for pages left unranked (tiers)."""
        first = ranked[0] if ranked else None
        return Ranking(
            hits=[hit for hit in ranked[self.offset : self.wanted] if hit is not None],
            best_score=first.score if first is not None else None,
        )


_METADATA = MetadataQuery(score=True, distance=True)


def pages_search(
    *,
    library_ids: Sequence[int],
    query: str,
    mode: SearchMode,
    limit: int,
    alpha: float = 0.5,
    document_id: uuid.UUID | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    offset: int = 0,
    tie_keys: TieKeys = _no_tie_keys,
) -> list[PageHit]:
    """Pages of these libraries ranked for `query` (`pages_ranked` without the best score)."""
    return pages_ranked(
        library_ids=library_ids,
        query=query,
        mode=mode,
        limit=limit,
        alpha=alpha,
        document_id=document_id,
        document_ids=document_ids,
        offset=offset,
        tie_keys=tie_keys,
    ).hits


@weaviate_errors("Weaviate search failed")
def pages_ranked(
    *,
    library_ids: Sequence[int],
    query: str,
    mode: SearchMode,
    limit: int,
    alpha: float = 0.5,
    document_id: uuid.UUID | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    offset: int = 0,
    tie_keys: TieKeys = _no_tie_keys,
    query_vector: Sequence[Sequence[float]] | None = None,
    query_image: bytes | None = None,
) -> Ranking:
    """Pages of these libraries ranked for `query`. The library filter is applied inside
    Weaviate: one query spans all the libraries a person searches.

    A search by image (semantic only) gives the image's multi-vector as `query_vector`, or,
    on Weaviate Cloud, which embeds queries itself, the image's JPEG as `query_image`.

    `document_ids` narrows to those documents (an empty list matches nothing); `offset` skips
    the first results, for "more results". Every mode ranks by score, then by document and page
    (`tie_keys`), in each of its stages, and its ranking does not depend on `offset` or `limit`:
    windows asked for one after the other neither repeat nor skip a page (Weaviate's own order
    of equal scores changes from call to call).
    """
    if not library_ids or (document_ids is not None and not document_ids):
        return Ranking(hits=[], best_score=None)
    # Self-hosted, DocDB asks the embedder for the query's vectors itself: once for both stages
    # of semantic search, and without the hop through Weaviate's module (hybrid search took a
    # fifth less time, docs/benchmarks.md). On Weaviate Cloud, Weaviate embeds the query.
    embed_here = not settings.WEAVIATE_CLOUD and mode != SearchMode.KEYWORD
    if query_vector is None and embed_here and query_image is None:
        query_vector = _query_vector(query)
    search = _Search(
        collection=_collection(),
        query=query,
        vector=query_vector,
        image=None if query_image is None else base64.b64encode(query_image).decode("ascii"),
        filters=_search_filter(library_ids, document_id, document_ids),
        limit=limit,
        offset=offset,
        alpha=alpha,
        tie_keys=tie_keys,
        tier=max(1, settings.WEAVIATE_RERANK_CANDIDATES),
    )
    return _SEARCHES[mode](search)


class QueryRefused(Exception):
    """The embedder turned the query down (too long, say); the message is its reason."""


def _query_vector(query: str) -> MultiVector:
    try:
        return query_embed(query)
    except EmbedderRefused as exc:
        raise QueryRefused(exc.detail) from exc
    except EmbedderError as exc:
        # What Weaviate's module failing to embed the query would be: search is unavailable.
        raise WeaviateUnavailable(str(exc)) from exc


def _semantic_search(search: _Search) -> Ranking:
    if search.vector is not None and _two_stage(search.collection):
        return search.window(_semantic_tiers(search, search.vector))
    # MUVERA re-ranks exactly only twice the limit asked for when Weaviate scans (libraries with
    # fewer pages than WEAVIATE_FLAT_SEARCH_CUTOFF), ef of them otherwise: ask for more
    # candidates and keep the best (docs/benchmarks.md).
    candidates = settings.WEAVIATE_SEARCH_CANDIDATES // 2

    def fetch(size: int) -> list[PageHit]:
        window: dict[str, Any] = {
            "target_vector": VECTOR_NAME,
            "limit": min(max(size, candidates), _MAX_RESULTS),
            "filters": search.filters,
            "return_metadata": _METADATA,
            "return_properties": _RESULT_PROPERTIES,
        }
        if search.vector is not None:
            response = search.collection.query.near_vector(near_vector=search.vector, **window)
        elif search.image is not None:
            response = search.collection.query.near_image(near_image=search.image, **window)
        else:
            response = search.collection.query.near_text(query=search.query, **window)
        return _hits(response.objects, by_distance=True)

    return search.window(_best(fetch, search.wanted, search.tie_keys))


def _hybrid_search(search: _Search) -> Ranking:
    if search.vector is not None and _two_stage(search.collection):
        return search.window(_hybrid_tiers(search, search.vector))

    def fetch(size: int) -> list[PageHit]:
        response = search.collection.query.hybrid(
            query=search.query,
            vector=search.vector,
            alpha=search.alpha,
            target_vector=VECTOR_NAME,
            query_properties=list(_KEYWORD_PROPERTIES),
            limit=size,
            filters=search.filters,
            return_metadata=_METADATA,
            return_properties=_RESULT_PROPERTIES,
        )
        return _hits(response.objects, by_distance=False)

    return search.window(_best(fetch, search.wanted, search.tie_keys))


def _keyword_search(search: _Search) -> Ranking:
    return search.window(_keyword_best(search, search.wanted))


def _keyword_best(search: _Search, size: int) -> list[PageHit]:
    def fetch(size: int) -> list[PageHit]:
        response = search.collection.query.bm25(
            query=search.query,
            query_properties=list(_KEYWORD_PROPERTIES),
            limit=size,
            filters=search.filters,
            return_metadata=_METADATA,
            return_properties=_RESULT_PROPERTIES,
        )
        return _hits(response.objects, by_distance=False)

    return _best(fetch, size, search.tie_keys)


_SEARCHES = {
    SearchMode.VECTOR: _semantic_search,
    SearchMode.HYBRID: _hybrid_search,
    SearchMode.KEYWORD: _keyword_search,
}


def _best(fetch: Callable[[int], list[PageHit]], size: int, tie_keys: TieKeys) -> list[PageHit]:
    """The `size` best hits `fetch` finds, by score, then document and page.

    Which of several equal scores Weaviate returns at the end of a window, and in what order,
    changes from call to call; so the window is widened until the score at its end is followed
    by a lower one, and the order is DocDB's.
    """
    asked = min(size + _TIE_MARGIN, _MAX_RESULTS)
    while True:
        hits = sorted(fetch(asked), key=lambda hit: -hit.score)
        complete = len(hits) < asked or len(hits) <= size or asked >= _MAX_RESULTS
        if complete or hits[-1].score < hits[size - 1].score:
            return _ordered(hits, tie_keys)[:size]
        asked = min(asked * 2, _MAX_RESULTS)


def _ordered(hits: Sequence[PageHit], tie_keys: TieKeys) -> list[PageHit]:
    """Hits by score, equal scores by document and page."""
    counts = Counter(hit.score for hit in hits)
    tied = [hit.object_id for hit in hits if counts[hit.score] > 1]
    keys = tie_keys(tied) if tied else {}
    return sorted(
        hits,
        key=lambda hit: (-hit.score, keys.get(hit.object_id, _NO_KEY), str(hit.object_id)),
    )


def _tiers_ranked(search: _Search, sizes: Sequence[int]) -> set[int]:
    """Which tiers of these sizes must be ranked: those the window overlaps, and the first
    (the best score)."""
    ranked = {0}
    start = 0
    for index, size in enumerate(sizes):
        if start < search.wanted and start + size > search.offset:
            ranked.add(index)
        start += size
    return ranked


def _semantic_tiers(search: _Search, vector: Sequence[Sequence[float]]) -> list[PageHit | None]:
    """Two-stage semantic search in tiers: the first-stage ranking (MaxSim over pooled vectors)
    cut into tiers of WEAVIATE_RERANK_CANDIDATES pages, each tier ranked by exact MaxSim, the
    tiers one after the other.

    Re-ranking all the candidates a window needs together would let a later window's larger
    candidate set reorder what an earlier one showed; tiers keep every window a slice of one
    ranking, and rank only the tiers a window overlaps. Those not ranked stand as None.
    """
    tier = search.tier
    first = _pooled_ranking(search, vector, -(-search.wanted // tier) * tier)
    tiers = [first[start : start + tier] for start in range(0, len(first), tier)]
    ranked = _tiers_ranked(search, [len(candidates) for candidates in tiers])
    scored_ids = [hit.object_id for index in ranked if index < len(tiers) for hit in tiers[index]]
    exact = _exact_scores(search.collection, vector, scored_ids, filters=search.filters)
    ranking: list[PageHit | None] = []
    for index, candidates in enumerate(tiers):
        if index not in ranked:
            ranking += [None] * len(candidates)
            continue
        scored = [
            PageHit(object_id=hit.object_id, score=exact[hit.object_id])
            for hit in candidates
            if hit.object_id in exact
        ]
        ranking += _ordered(scored, search.tie_keys)
    return ranking


def _hybrid_tiers(search: _Search, vector: Sequence[Sequence[float]]) -> list[PageHit | None]:
    """Two-stage hybrid search in tiers: tier t holds the pages ranked t * N to (t + 1) * N by
    the first stage of each half (MaxSim over pooled vectors, BM25), N being
    WEAVIATE_RERANK_CANDIDATES, less those of earlier tiers; Weaviate fuses each tier on its
    own (`_hybrid_fused`), and the tiers follow one another (see `_semantic_tiers`).

    So `alpha=1` ranks each tier like semantic search, and `alpha=0` like keyword search.
    """
    tier = search.tier
    # The first n tiers hold at least n * N pages: all those of the first stage's n * N best.
    count = -(-search.wanted // tier)
    nearest = _pooled_ranking(search, vector, count * tier)
    keyword = _keyword_best(search, count * tier)
    seen: set[uuid.UUID] = set()
    tiers: list[list[uuid.UUID]] = []
    for start in range(0, count * tier, tier):
        hits = (*nearest[start : start + tier], *keyword[start : start + tier])
        ids = list(dict.fromkeys(hit.object_id for hit in hits if hit.object_id not in seen))
        seen.update(ids)
        tiers.append(ids)
    ranked = _tiers_ranked(search, [len(ids) for ids in tiers])
    ranking: list[PageHit | None] = []
    for index, ids in enumerate(tiers):
        if index not in ranked:
            ranking += [None] * len(ids)
        elif ids:
            objects = _hybrid_fused(search, vector, ids)
            ranking += _ordered(_hits(objects, by_distance=False), search.tie_keys)
    return ranking


def _pooled_ranking(search: _Search, vector: Sequence[Sequence[float]], size: int) -> list[PageHit]:
    """The first stage: the `size` pages nearest by MaxSim over their pooled vectors."""

    def fetch(limit: int) -> list[PageHit]:
        response = search.collection.query.near_vector(
            near_vector=vector,
            target_vector=POOLED_VECTOR_NAME,
            limit=limit,
            filters=search.filters,
            return_metadata=MetadataQuery(distance=True),
            return_properties=[],
        )
        return _hits(response.objects, by_distance=True)

    return _best(fetch, size, search.tie_keys)


def _exact_scores(
    collection: Collection,
    vector: Sequence[Sequence[float]],
    ids: Sequence[uuid.UUID],
    *,
    filters: _Filters | None,
) -> dict[uuid.UUID, float]:
    """Exact MaxSim over the full vectors of these pages.

    The filter allows only them, fewer than the flat search cutoff, so Weaviate scans them, and
    a scan re-ranks twice the limit asked for with MaxSim over the full vectors: every one of
    them (hnsw/search.go in Weaviate 1.39).
    """
    if not ids:
        return {}
    response = collection.query.near_vector(
        near_vector=vector,
        target_vector=VECTOR_NAME,
        limit=len(ids),
        filters=_only(ids, filters),
        return_metadata=MetadataQuery(distance=True),
        return_properties=[],
    )
    return {hit.object_id: hit.score for hit in _hits(response.objects, by_distance=True)}


def _hybrid_fused(
    search: _Search, vector: Sequence[Sequence[float]], ids: Sequence[uuid.UUID]
) -> list[Any]:
    """Weaviate's fusion of exact MaxSim and BM25 over these pages alone (relative scores,
    `alpha`): an allow-list below the flat cutoff is scanned, and all of it is asked for."""
    response = search.collection.query.hybrid(
        query=search.query,
        vector=vector,
        alpha=search.alpha,
        target_vector=VECTOR_NAME,
        query_properties=list(_KEYWORD_PROPERTIES),
        limit=len(ids),
        filters=_only(ids, search.filters),
        return_metadata=MetadataQuery(score=True),
        return_properties=[],
    )
    return list(response.objects)


def two_stage_search(
    collection: Collection,
    vector: Sequence[Sequence[float]],
    *,
    filters: _Filters | None,
    candidates: int,
    return_properties: Sequence[str],
) -> list[Any]:
    """Pages by exact MaxSim, among the `candidates` best by MaxSim over pooled vectors: one
    tier of `_semantic_tiers`, as objects with `return_properties` (similar pages, benchmarks).

    The pooled index scores a page against a few dozen vectors instead of ~900, so finding
    candidates is cheap and close to exact; the second query re-ranks all of them exactly.
    Equal scores come in id order.
    """
    search = _Search(
        collection=collection,
        query="",
        vector=None,
        filters=filters,
        limit=candidates,
        offset=0,
        alpha=1.0,
        tie_keys=_no_tie_keys,
    )
    ids = [hit.object_id for hit in _pooled_ranking(search, vector, candidates)]
    if not ids:
        return []
    second = collection.query.near_vector(
        near_vector=vector,
        target_vector=VECTOR_NAME,
        limit=len(ids),
        filters=_only(ids, filters),
        return_metadata=MetadataQuery(distance=True),
        return_properties=list(return_properties),
    )
    return sorted(second.objects, key=lambda obj: (obj.metadata.distance, str(obj.uuid)))


def two_stage_window(
    collection: Collection,
    vector: Sequence[Sequence[float]],
    *,
    filters: _Filters | None,
    tier: int,
    limit: int,
    offset: int,
) -> list[PageHit]:
    """One window of two-stage semantic search as `pages_ranked` takes it (`_semantic_tiers`),
    equal scores in id order: for benchmarks, which have no DocDB rows."""
    search = _Search(
        collection=collection,
        query="",
        vector=vector,
        filters=filters,
        limit=limit,
        offset=offset,
        alpha=1.0,
        tie_keys=_no_tie_keys,
        tier=tier,
    )
    return search.window(_semantic_tiers(search, vector)).hits


def _only(ids: Sequence[Any], filters: _Filters | None) -> _Filters:
    """`filters`, narrowed to these object ids."""
    only_ids = Filter.by_id().contains_any([str(value) for value in ids])
    return only_ids if filters is None else filters & only_ids


def _two_stage(collection: Collection) -> bool:
    """Whether semantic search can run in two stages: on (pooled vectors set to more than 0)
    and the collection holds pooled vectors."""
    return settings.WEAVIATE_POOLED_VECTORS > 0 and POOLED_VECTOR_NAME in _vector_names(collection)


def _vector_names(collection: Collection, *, fresh: bool = False) -> frozenset[str]:
    """The collection's named vectors, read at most every few seconds unless `fresh`."""
    now = time.monotonic()
    seen = _vector_names_seen.get(collection.name)
    if seen is not None and not fresh and now - seen[0] < _VECTOR_NAMES_TTL_SECONDS:
        return seen[1]
    config = collection.config.get()
    names = frozenset((config.vector_config or {}).keys())
    _vector_names_seen[collection.name] = (now, names)
    return names


def _hits(objects: Sequence[Any], *, by_distance: bool) -> list[PageHit]:
    # Multi-vector distance is the negative MaxSim score.
    return [
        PageHit(
            object_id=uuid.UUID(str(obj.uuid)),
            score=float(
                -(obj.metadata.distance or 0.0) if by_distance else obj.metadata.score or 0.0
            ),
        )
        for obj in objects
    ]


@weaviate_errors("Weaviate fetch failed")
def page_vector(document_id: uuid.UUID, page_number: int) -> list[list[float]] | None:
    """The stored multi-vector of one page (None when the page is not in Weaviate)."""
    obj = _collection().query.fetch_object_by_id(
        page_uuid(document_id, page_number), include_vector=[VECTOR_NAME]
    )
    if obj is None:
        return None
    vector = obj.vector.get(VECTOR_NAME)
    return vector  # type: ignore[return-value]


@weaviate_errors("Weaviate fetch failed")
def page_multivector(
    *, library_ids: Sequence[int], document_id: uuid.UUID, page_number: int
) -> list[list[float]] | None:
    """One page's stored multi-vector, only if it is in one of these libraries (None
    otherwise, or if absent)."""
    obj = _collection().query.fetch_object_by_id(
        page_uuid(document_id, page_number),
        include_vector=[VECTOR_NAME],
        return_properties=["library_id"],
    )
    if obj is None or obj.properties.get("library_id") not in library_ids:
        return None
    vector = obj.vector.get(VECTOR_NAME)
    return vector  # type: ignore[return-value]


@weaviate_errors("Weaviate similar-pages search failed")
def pages_similar(
    *,
    library_ids: Sequence[int],
    vector: Sequence[Sequence[float]],
    exclude_document_id: uuid.UUID,
    exclude_page_number: int,
    limit: int,
    tie_keys: TieKeys = _no_tie_keys,
) -> list[PageHit]:
    """The pages of these libraries nearest to a page's own multi-vector (MaxSim), that page
    left out, ranked as semantic search ranks pages for a query."""
    if not library_ids:
        return []
    filters = _library_filter(library_ids) & Filter.by_id().not_equal(
        page_uuid(exclude_document_id, exclude_page_number)
    )
    search = _Search(
        collection=_collection(),
        query="",
        vector=vector,
        filters=filters,
        limit=limit,
        offset=0,
        alpha=1.0,
        tie_keys=tie_keys,
        tier=max(1, settings.WEAVIATE_RERANK_CANDIDATES),
    )
    return _semantic_search(search).hits


def pages_retitle(*, document_id: uuid.UUID, page_numbers: Sequence[int], title: str) -> None:
    """Set the title on these pages' objects (keyword search matches titles)."""
    _objects_update([page_uuid(document_id, n) for n in page_numbers], {"title": title})


def pages_library_set(
    *, document_id: uuid.UUID, page_numbers: Sequence[int], library_id: int
) -> None:
    """Set the library on these pages' objects: a document moved, or indexed before libraries."""
    objects_library_set(
        object_ids=[page_uuid(document_id, n) for n in page_numbers], library_id=library_id
    )


def objects_library_set(*, object_ids: Sequence[uuid.UUID | str], library_id: int) -> None:
    """Set the library on these objects (those `objects_misfiled` found, say)."""
    _objects_update(object_ids, {"library_id": library_id})


@weaviate_errors("Weaviate update failed")
def _objects_update(object_ids: Sequence[uuid.UUID | str], properties: dict[str, Any]) -> None:
    """Change these properties of the objects, in place.

    A partial update (PATCH): Weaviate keeps the stored vectors and does not send the image to
    the embedder again, as no property it vectorizes changes (tests/test_libraries.py checks the
    embedder's counters).
    """
    if not object_ids:
        return
    collection = _collection(write=True)
    for object_id in object_ids:
        collection.data.update(uuid=object_id, properties=properties)


@weaviate_errors("Weaviate count failed")
def pages_without_library() -> int:
    """How many objects have no library yet (indexed before libraries existed). An object
    without the property is absent from its index, so no range filter matches it."""
    collection = _collection()
    total = collection.aggregate.over_all(total_count=True).total_count or 0
    with_library = collection.aggregate.over_all(
        filters=Filter.by_property("library_id").greater_or_equal(0), total_count=True
    ).total_count
    return total - (with_library or 0)
