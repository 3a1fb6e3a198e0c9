"""What the collection holds, for the operations page and `reconcile`: which pages of which
documents, the server's version, and targeted deletes of objects that should not be there.
"""

import uuid
from typing import Any

from django.conf import settings
from weaviate.classes.query import Filter
from weaviate.exceptions import WeaviateBaseError

from docdb.weaviate_store.client import WeaviateUnavailable, client_get
from docdb.weaviate_store.pages import page_uuid

# delete_many removes at most QUERY_MAXIMUM_RESULTS (10 000) objects per call.
_DELETE_ROUNDS = 100


def pages_inventory() -> dict[uuid.UUID, set[int]]:
    """Every object's document id and page number (no images, no vectors): id → page numbers.

    It walks the whole collection with the cursor API, about 100 bytes per object, so a
    collection of 100 000 pages costs a few megabytes and a few seconds.
    """
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    inventory: dict[uuid.UUID, set[int]] = {}
    try:
        for obj in collection.iterator(return_properties=["document_id", "page_number"]):
            document_id = uuid.UUID(str(obj.properties["document_id"]))
            page_number = int(obj.properties["page_number"])  # type: ignore[arg-type]
            inventory.setdefault(document_id, set()).add(page_number)
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"Weaviate listing failed: {exc}") from exc
    return inventory


def pages_delete_numbers(*, document_id: uuid.UUID, numbers: list[int]) -> int:
    """Delete these pages' objects of one document (pages the database no longer has)."""
    if not numbers:
        return 0
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    ids = [page_uuid(document_id, number) for number in numbers]
    try:
        result = collection.data.delete_many(where=Filter.by_id().contains_any(ids))
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"Weaviate delete failed: {exc}") from exc
    return int(result.successful)


def pages_delete_orphaned(*, document_id: uuid.UUID) -> int:
    """Delete every object of a document id, whoever owns it: for documents no longer in the
    database, whose owner is unknown (`pages_delete` needs it).
    """
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    where = Filter.by_property("document_id").equal(str(document_id))
    deleted = 0
    try:
        for _ in range(_DELETE_ROUNDS):
            result = collection.data.delete_many(where=where)
            deleted += result.successful
            if result.matches == 0:
                return deleted
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"Weaviate delete failed: {exc}") from exc
    raise WeaviateUnavailable(f"Document {document_id} still has objects after deleting")


def server_describe() -> dict[str, Any]:
    """The server's version and modules, and whether the page collection exists."""
    client = client_get()
    try:
        meta = client.get_meta()
        exists = client.collections.exists(settings.WEAVIATE_COLLECTION)
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"Weaviate did not answer: {exc}") from exc
    return {
        "version": str(meta.get("version", "")),
        "modules": sorted((meta.get("modules") or {}).keys()),
        "collection": settings.WEAVIATE_COLLECTION,
        "collection_exists": exists,
    }
