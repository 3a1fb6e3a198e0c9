import base64
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.collections import Collection
from weaviate.collections.classes.filters import _Filters
from weaviate.exceptions import WeaviateBaseError
from weaviate.util import generate_uuid5

from docdb.weaviate_store.client import WeaviateUnavailable, client_get
from docdb.weaviate_store.schema import VECTOR_NAME

logger = logging.getLogger(__name__)

# Never fetch the page image back with search results: it is ~0.5 MB per page.
_RESULT_PROPERTIES = ["document_id", "owner_id", "title", "page_number"]
# Weaviate deletes at most QUERY_MAXIMUM_RESULTS objects per delete_many call.
_DELETE_ROUNDS = 100


class SearchMode(StrEnum):
    VECTOR = "vector"
    HYBRID = "hybrid"
    KEYWORD = "keyword"


class WeaviateImportError(Exception):
    """Weaviate refused some page objects (e.g. the embedder failed on them)."""


@dataclass(frozen=True)
class PageObject:
    document_id: uuid.UUID
    owner_id: int
    title: str
    file_name: str
    page_number: int
    text: str
    image_jpeg: bytes


@dataclass(frozen=True)
class PageHit:
    document_id: uuid.UUID
    page_number: int
    score: float


def page_uuid(document_id: uuid.UUID, page_number: int) -> str:
    """Deterministic object id, so importing a page twice overwrites instead of duplicating."""
    return str(generate_uuid5(f"{document_id}:{page_number}"))


def _collection() -> Collection:
    return client_get().collections.use(settings.WEAVIATE_COLLECTION)


def pages_upsert(pages: list[PageObject]) -> None:
    """Import pages; Weaviate sends each image to the embedder. Raises if any object failed."""
    collection = _collection()
    try:
        with collection.batch.fixed_size(
            batch_size=settings.WEAVIATE_IMPORT_BATCH_SIZE, concurrent_requests=1
        ) as batch:
            for page in pages:
                batch.add_object(
                    uuid=page_uuid(page.document_id, page.page_number),
                    properties={
                        "document_id": str(page.document_id),
                        "owner_id": page.owner_id,
                        "title": page.title,
                        "file_name": page.file_name,
                        "page_number": page.page_number,
                        "text": page.text,
                        "image": base64.b64encode(page.image_jpeg).decode("ascii"),
                    },
                )
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"Weaviate import failed: {exc}") from exc
    failed = collection.batch.failed_objects
    if failed:
        first = failed[0]
        raise WeaviateImportError(
            f"{len(failed)} of {len(pages)} pages were not indexed: {first.message}"
        )


def _owner_filter(owner_id: int, document_id: uuid.UUID | None = None) -> _Filters:
    owner = Filter.by_property("owner_id").equal(owner_id)
    if document_id is None:
        return owner
    return owner & Filter.by_property("document_id").equal(str(document_id))


def pages_delete(*, owner_id: int, document_id: uuid.UUID) -> int:
    """Delete every object of one document; returns how many went."""
    collection = _collection()
    deleted = 0
    try:
        for _ in range(_DELETE_ROUNDS):
            result = collection.data.delete_many(where=_owner_filter(owner_id, document_id))
            deleted += result.successful
            if result.matches == 0:
                return deleted
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"Weaviate delete failed: {exc}") from exc
    raise WeaviateUnavailable(f"Document {document_id} still has objects after deleting")


def pages_count(*, owner_id: int | None = None, document_id: uuid.UUID | None = None) -> int:
    collection = _collection()
    filters: _Filters | None = None
    if owner_id is not None:
        filters = _owner_filter(owner_id, document_id)
    elif document_id is not None:
        filters = Filter.by_property("document_id").equal(str(document_id))
    try:
        result = collection.aggregate.over_all(filters=filters, total_count=True)
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"Weaviate count failed: {exc}") from exc
    return result.total_count or 0


def pages_search(
    *,
    owner_id: int,
    query: str,
    mode: SearchMode,
    limit: int,
    alpha: float = 0.5,
    document_id: uuid.UUID | None = None,
) -> list[PageHit]:
    """Pages of one owner ranked for `query`. The owner filter is applied inside Weaviate."""
    collection = _collection()
    filters = _owner_filter(owner_id, document_id)
    metadata = MetadataQuery(score=True, distance=True)
    try:
        if mode == SearchMode.VECTOR:
            response = collection.query.near_text(
                query=query,
                target_vector=VECTOR_NAME,
                limit=limit,
                filters=filters,
                return_metadata=metadata,
                return_properties=_RESULT_PROPERTIES,
            )
        elif mode == SearchMode.HYBRID:
            response = collection.query.hybrid(
                query=query,
                alpha=alpha,
                target_vector=VECTOR_NAME,
                query_properties=["text", "title"],
                limit=limit,
                filters=filters,
                return_metadata=metadata,
                return_properties=_RESULT_PROPERTIES,
            )
        else:
            response = collection.query.bm25(
                query=query,
                query_properties=["text", "title"],
                limit=limit,
                filters=filters,
                return_metadata=metadata,
                return_properties=_RESULT_PROPERTIES,
            )
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"Weaviate search failed: {exc}") from exc
    hits = []
    for obj in response.objects:
        props = obj.properties
        if props.get("owner_id") != owner_id:
            # The filter above already guarantees this; a second check costs nothing.
            logger.error("Weaviate returned a page of another owner for owner %s", owner_id)
            continue
        if mode == SearchMode.VECTOR:
            # Multi-vector distance is the negative MaxSim score.
            score = -(obj.metadata.distance or 0.0)
        else:
            score = obj.metadata.score or 0.0
        hits.append(
            PageHit(
                document_id=uuid.UUID(str(props["document_id"])),
                page_number=int(props["page_number"]),  # type: ignore[arg-type]
                score=float(score),
            )
        )
    return hits


def page_vector(document_id: uuid.UUID, page_number: int) -> list[list[float]] | None:
    """The stored multi-vector of one page (None when the page is not in Weaviate)."""
    obj = _collection().query.fetch_object_by_id(
        page_uuid(document_id, page_number), include_vector=True
    )
    if obj is None:
        return None
    vector = obj.vector.get(VECTOR_NAME)
    return vector  # type: ignore[return-value]
