import base64
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
from django.conf import settings
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.collections import Collection
from weaviate.collections.classes.filters import _Filters
from weaviate.util import generate_uuid5

from docdb.embedder_client import EmbedderError, MultiVector, images_embed, query_embed
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
# Two-stage search re-ranks at most this many pages; "more results" past them is one-stage.
_TWO_STAGE_MAX_CANDIDATES = 1000
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
    owner_id: int
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
    with collection.batch.fixed_size(
        batch_size=settings.WEAVIATE_IMPORT_BATCH_SIZE, concurrent_requests=1
    ) as batch:
        for page in pages:
            properties: dict[str, Any] = {
                "document_id": str(page.document_id),
                "owner_id": page.owner_id,
                "title": page.title,
                "file_name": page.file_name,
                "page_number": page.page_number,
                "text": page.text,
            }
            if client_side:
                vector = {VECTOR_NAME: _plain_lists(page.vectors or [])}
                if pooled_size:
                    full = np.asarray(page.vectors, dtype=np.float32)
                    vector[POOLED_VECTOR_NAME] = multivector_pool(full, pooled_size).tolist()
            else:
                properties["image"] = base64.b64encode(page.image_jpeg).decode("ascii")
                vector = None
            batch.add_object(
                uuid=page_uuid(page.document_id, page.page_number),
                properties=properties,
                vector=vector,
            )
    failed = collection.batch.failed_objects
    if failed:
        first = failed[0]
        raise WeaviateImportError(
            f"{len(failed)} of {len(pages)} pages were not indexed: {first.message}"
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


def _search_filter(
    owner_id: int, document_id: uuid.UUID | None, document_ids: Sequence[uuid.UUID] | None
) -> _Filters:
    filters = _owner_filter(owner_id, document_id)
    if document_ids is not None:
        filters = filters & Filter.by_property("document_id").contains_any(
            [str(value) for value in document_ids]
        )
    return filters


def pages_delete(*, owner_id: int, document_id: uuid.UUID) -> int:
    """Delete every object of one document; returns how many went."""
    return objects_delete(_owner_filter(owner_id, document_id), document_id=document_id)


@weaviate_errors("Weaviate delete failed")
def objects_delete(where: _Filters, *, document_id: uuid.UUID) -> int:
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
def pages_count(*, owner_id: int | None = None, document_id: uuid.UUID | None = None) -> int:
    collection = _collection()
    filters: _Filters | None = None
    if owner_id is not None:
        filters = _owner_filter(owner_id, document_id)
    elif document_id is not None:
        filters = Filter.by_property("document_id").equal(str(document_id))
    result = collection.aggregate.over_all(filters=filters, total_count=True)
    return result.total_count or 0


@dataclass(frozen=True)
class _Search:
    """One search, as every mode's function takes it."""

    collection: Collection
    query: str
    # The query's multi-vector when DocDB embedded it (self-hosted); None: Weaviate embeds.
    vector: MultiVector | None
    filters: _Filters | None
    limit: int
    offset: int
    alpha: float

    @property
    def wanted(self) -> int:
        return self.limit + self.offset

    def page(self, hits: list[PageHit]) -> list[PageHit]:
        return hits[self.offset : self.offset + self.limit]


_METADATA = MetadataQuery(score=True, distance=True)


@weaviate_errors("Weaviate search failed")
def pages_search(
    *,
    owner_id: int,
    query: str,
    mode: SearchMode,
    limit: int,
    alpha: float = 0.5,
    document_id: uuid.UUID | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    offset: int = 0,
) -> list[PageHit]:
    """Pages of one owner ranked for `query`. The owner filter is applied inside Weaviate.

    `document_ids` narrows to those documents (an empty list matches nothing); `offset` skips
    the first results, for "more results".
    """
    if document_ids is not None and not document_ids:
        return []
    # Self-hosted, DocDB asks the embedder for the query's vectors itself: once for both stages
    # of semantic search, and without the hop through Weaviate's module (hybrid search took a
    # fifth less time, docs/benchmarks.md). On Weaviate Cloud, Weaviate embeds the query.
    embed_here = not settings.WEAVIATE_CLOUD and mode != SearchMode.KEYWORD
    search = _Search(
        collection=_collection(),
        query=query,
        vector=_query_vector(query) if embed_here else None,
        filters=_search_filter(owner_id, document_id, document_ids),
        limit=limit,
        offset=offset,
        alpha=alpha,
    )
    return _SEARCHES[mode](search)


def _query_vector(query: str) -> MultiVector:
    try:
        return query_embed(query)
    except EmbedderError as exc:
        # What Weaviate's module failing to embed the query would be: search is unavailable.
        raise WeaviateUnavailable(str(exc)) from exc


def _shortlist(search: _Search) -> int:
    return max(settings.WEAVIATE_RERANK_CANDIDATES, search.wanted)


def _semantic_search(search: _Search) -> list[PageHit]:
    if search.vector is not None and _two_stage(search.collection, search.wanted):
        objects = two_stage_search(
            search.collection,
            search.vector,
            filters=search.filters,
            candidates=_shortlist(search),
            return_properties=_RESULT_PROPERTIES,
        )
        return search.page(_hits(objects, by_distance=True))
    # MUVERA re-ranks exactly only twice the limit asked for when Weaviate scans (an owner with
    # fewer pages than WEAVIATE_FLAT_SEARCH_CUTOFF), ef of them otherwise: ask for more
    # candidates and keep the best (docs/benchmarks.md).
    candidates = settings.WEAVIATE_SEARCH_CANDIDATES // 2
    wide = candidates > search.wanted
    window: dict[str, Any] = {
        "target_vector": VECTOR_NAME,
        "limit": candidates if wide else search.limit,
        "offset": 0 if wide else search.offset,
        "filters": search.filters,
        "return_metadata": _METADATA,
        "return_properties": _RESULT_PROPERTIES,
    }
    if search.vector is not None:
        response = search.collection.query.near_vector(near_vector=search.vector, **window)
    else:
        response = search.collection.query.near_text(query=search.query, **window)
    hits = _hits(response.objects, by_distance=True)
    return search.page(hits) if wide else hits


def _hybrid_search(search: _Search) -> list[PageHit]:
    if search.vector is not None and _two_stage(search.collection, search.wanted):
        objects = two_stage_hybrid(
            search.collection,
            search.query,
            search.vector,
            alpha=search.alpha,
            filters=search.filters,
            candidates=_shortlist(search),
        )
        return search.page(_hits(objects, by_distance=False))
    response = search.collection.query.hybrid(
        query=search.query,
        vector=search.vector,
        alpha=search.alpha,
        target_vector=VECTOR_NAME,
        query_properties=list(_KEYWORD_PROPERTIES),
        limit=search.limit,
        offset=search.offset,
        filters=search.filters,
        return_metadata=_METADATA,
        return_properties=_RESULT_PROPERTIES,
    )
    return _hits(response.objects, by_distance=False)


def _keyword_search(search: _Search) -> list[PageHit]:
    response = search.collection.query.bm25(
        query=search.query,
        query_properties=list(_KEYWORD_PROPERTIES),
        limit=search.limit,
        offset=search.offset,
        filters=search.filters,
        return_metadata=_METADATA,
        return_properties=_RESULT_PROPERTIES,
    )
    return _hits(response.objects, by_distance=False)


_SEARCHES = {
    SearchMode.VECTOR: _semantic_search,
    SearchMode.HYBRID: _hybrid_search,
    SearchMode.KEYWORD: _keyword_search,
}


def two_stage_search(
    collection: Collection,
    vector: Sequence[Sequence[float]],
    *,
    filters: _Filters | None,
    candidates: int,
    return_properties: Sequence[str],
) -> list[Any]:
    """Pages by exact MaxSim, among the `candidates` best by MaxSim over pooled vectors.

    The pooled index scores a page against a few dozen vectors instead of ~900, so finding
    candidates is cheap and close to exact; the second query re-ranks all of them exactly. Its
    filter allows only the candidates, fewer than the flat search cutoff, so Weaviate scans
    them, and a scan re-ranks twice the limit asked for with MaxSim over the full vectors:
    every candidate (hnsw/search.go in Weaviate 1.39).
    """
    ids = _pooled_nearest(collection, vector, filters=filters, limit=candidates)
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
    return list(second.objects)


def two_stage_hybrid(
    collection: Collection,
    query: str,
    vector: Sequence[Sequence[float]],
    *,
    alpha: float,
    filters: _Filters | None,
    candidates: int,
) -> list[Any]:
    """Hybrid search over the best `candidates` pages of each half: the nearest by MaxSim over
    pooled vectors (as in `two_stage_search`) and the best by BM25.

    Weaviate then fuses the two halves over those pages alone, as it always does (relative
    scores, `alpha`), its vector half scoring every one of them by exact MaxSim over the full
    vectors: an allow-list below the flat cutoff is scanned, and all of it is asked for. So
    `alpha=1` ranks like semantic search, and `alpha=0` like keyword search.
    """
    nearest = _pooled_nearest(collection, vector, filters=filters, limit=candidates)
    keyword = collection.query.bm25(
        query=query,
        query_properties=list(_KEYWORD_PROPERTIES),
        limit=candidates,
        filters=filters,
        return_properties=[],
    )
    ids = list(dict.fromkeys([*nearest, *(obj.uuid for obj in keyword.objects)]))
    if not ids:
        return []
    response = collection.query.hybrid(
        query=query,
        vector=vector,
        alpha=alpha,
        target_vector=VECTOR_NAME,
        query_properties=list(_KEYWORD_PROPERTIES),
        limit=len(ids),
        filters=_only(ids, filters),
        return_metadata=MetadataQuery(score=True),
        return_properties=[],
    )
    return list(response.objects)


def _pooled_nearest(
    collection: Collection,
    vector: Sequence[Sequence[float]],
    *,
    filters: _Filters | None,
    limit: int,
) -> list[Any]:
    """The ids of the `limit` pages nearest by MaxSim over their pooled vectors."""
    response = collection.query.near_vector(
        near_vector=vector,
        target_vector=POOLED_VECTOR_NAME,
        limit=limit,
        filters=filters,
        return_properties=[],
    )
    return [obj.uuid for obj in response.objects]


def _only(ids: Sequence[Any], filters: _Filters | None) -> _Filters:
    """`filters`, narrowed to these object ids."""
    only_ids = Filter.by_id().contains_any(list(ids))
    return only_ids if filters is None else filters & only_ids


def _two_stage(collection: Collection, wanted: int) -> bool:
    """Whether semantic search can run in two stages: on (pooled vectors set to more than 0),
    the collection holds pooled vectors, and the results asked for lie among the candidates."""
    return (
        settings.WEAVIATE_POOLED_VECTORS > 0
        and wanted <= _TWO_STAGE_MAX_CANDIDATES
        and POOLED_VECTOR_NAME in _vector_names(collection)
    )


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
    *, owner_id: int, document_id: uuid.UUID, page_number: int
) -> list[list[float]] | None:
    """One page's stored multi-vector, only if `owner_id` owns it (None otherwise, or if absent)."""
    obj = _collection().query.fetch_object_by_id(
        page_uuid(document_id, page_number),
        include_vector=[VECTOR_NAME],
        return_properties=["owner_id"],
    )
    if obj is None or obj.properties.get("owner_id") != owner_id:
        return None
    vector = obj.vector.get(VECTOR_NAME)
    return vector  # type: ignore[return-value]


@weaviate_errors("Weaviate similar-pages search failed")
def pages_similar(
    *,
    owner_id: int,
    vector: Sequence[Sequence[float]],
    exclude_document_id: uuid.UUID,
    exclude_page_number: int,
    limit: int,
) -> list[PageHit]:
    """The owner's pages nearest to a page's own multi-vector (MaxSim), that page left out."""
    filters = _owner_filter(owner_id) & Filter.by_id().not_equal(
        page_uuid(exclude_document_id, exclude_page_number)
    )
    collection = _collection()
    if _two_stage(collection, limit):
        objects = two_stage_search(
            collection,
            vector,
            filters=filters,
            candidates=max(settings.WEAVIATE_RERANK_CANDIDATES, limit),
            return_properties=_RESULT_PROPERTIES,
        )
        return _hits(objects, by_distance=True)[:limit]
    response = collection.query.near_vector(
        near_vector=vector,
        target_vector=VECTOR_NAME,
        limit=limit,
        filters=filters,
        return_metadata=MetadataQuery(distance=True),
        return_properties=_RESULT_PROPERTIES,
    )
    return _hits(response.objects, by_distance=True)


@weaviate_errors("Weaviate update failed")
def pages_retitle(*, document_id: uuid.UUID, page_numbers: Sequence[int], title: str) -> None:
    """Set the title on these pages' objects (keyword search matches titles).

    A partial update: Weaviate keeps the stored vectors and does not send the image to the
    embedder again.
    """
    if not page_numbers:
        return
    collection = _collection(write=True)
    for number in page_numbers:
        collection.data.update(uuid=page_uuid(document_id, number), properties={"title": title})
