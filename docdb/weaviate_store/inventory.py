"""What the collection holds, for the operations page and `reconcile`: which pages of which
documents, which of them are in another library than their document's, the server's version,
and targeted deletes of objects that should not be there.
"""

import logging
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from weaviate.classes.aggregate import GroupByAggregate
from weaviate.classes.query import Filter
from weaviate.collections import Collection as WeaviateCollection
from weaviate.collections.classes.filters import _Filters

from docdb.weaviate_store.client import client_get, collection_get, weaviate_errors
from docdb.weaviate_store.pages import page_uuid

logger = logging.getLogger(__name__)

# A query answers at most QUERY_MAXIMUM_RESULTS objects.
_QUERY_MAXIMUM_RESULTS = 10_000
# How many objects one listing query is meant to return: the ids of a few documents' pages.
_LISTING_OBJECTS = 2_000
# Objects whose properties are read per query: Weaviate reads each one whole, image included.
_READ_BATCH = 100
_INVENTORY_PROPERTIES = ["document_id", "page_number"]
# Documents whose objects' library one query checks (values of its ContainsAny filters).
_MISFILED_DOCUMENTS = 1_000


@dataclass
class Inventory:
    """What the collection holds, as pages of documents."""

    # Page numbers of the objects of each document asked about that has any.
    pages: dict[uuid.UUID, set[int]]
    # Documents not asked about that have objects: document id → how many.
    others: dict[uuid.UUID, int]


@weaviate_errors("Weaviate listing failed")
def pages_inventory(
    *, documents: Iterable[uuid.UUID], known: Mapping[uuid.UUID, tuple[uuid.UUID, int]]
) -> Inventory:
    """Which pages of `documents` have objects, and which other documents have any.

    `known` maps the object ids the database knows (Page.search_id) to their document and page
    number. For any property asked for, Weaviate reads and decodes the whole stored object, page
    image included, and its cursor does so even for ids alone: walking 3 000 objects with 400 KB
    images (1.6 GB) took 9-13 s on 2 cores either way, all of it Weaviate's CPU. Objects found
    through a filter and returned as ids alone cost far less, so this lists the documents' ids,
    a few documents per query (0.12-0.17 s for the same 3 000 objects), and reads properties
    only of the objects whose ids the database does not know (~1.2 ms each). The objects of
    other documents (orphans) are looked for only when the collection holds more objects than
    were listed: grouping by document reads every object (0.6 s for the 3 000).
    """
    document_ids = list(dict.fromkeys(documents))
    collection = collection_get()
    # Counted before listing, so that pages imported meanwhile (documents in the pipeline)
    # make the listing longer, never the count: only objects of other documents can.
    total = _objects_total(collection)
    listed = _objects_listed(collection, document_ids, known)
    if listed is None:
        logger.info("inventory: a listing query reached its maximum; walking the collection")
        return _inventory_walked(collection, set(document_ids))
    found = [known[object_id] for object_id in listed if object_id in known]
    unknown = [object_id for object_id in listed if object_id not in known]
    pages: dict[uuid.UUID, set[int]] = {}
    for document_id, number in found + _objects_read(collection, unknown):
        pages.setdefault(document_id, set()).add(number)
    others: dict[uuid.UUID, int] = {}
    if total > len(listed):
        others = _objects_counted(collection, total=total, exclude=set(document_ids))
    return Inventory(pages=pages, others=others)


def _objects_listed(
    collection: WeaviateCollection,
    document_ids: list[uuid.UUID],
    known: Mapping[uuid.UUID, tuple[uuid.UUID, int]],
) -> set[uuid.UUID] | None:
    """The ids of the documents' objects, a few documents per query; None when a query
    reached Weaviate's maximum (a document of more than 10 000 objects)."""
    expected = Counter(document_id for document_id, _ in known.values())
    listed: set[uuid.UUID] = set()
    for chunk in _chunks(document_ids, expected):
        response = collection.query.fetch_objects(
            filters=Filter.by_property("document_id").contains_any([str(d) for d in chunk]),
            limit=_QUERY_MAXIMUM_RESULTS,
            return_properties=[],
        )
        if len(response.objects) >= _QUERY_MAXIMUM_RESULTS:
            return None
        listed.update(uuid.UUID(str(obj.uuid)) for obj in response.objects)
    return listed


def _chunks(
    document_ids: list[uuid.UUID], expected: Mapping[uuid.UUID, int]
) -> list[list[uuid.UUID]]:
    """Documents in groups of about _LISTING_OBJECTS pages the database knows."""
    chunks: list[list[uuid.UUID]] = []
    size = _LISTING_OBJECTS
    for document_id in document_ids:
        pages = max(expected.get(document_id, 0), 1)
        if size + pages > _LISTING_OBJECTS:
            chunks.append([])
            size = 0
        chunks[-1].append(document_id)
        size += pages
    return chunks


def _objects_read(
    collection: WeaviateCollection, object_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, int]]:
    """The document and page number of these objects (those still there)."""
    found = []
    for start in range(0, len(object_ids), _READ_BATCH):
        batch = object_ids[start : start + _READ_BATCH]
        response = collection.query.fetch_objects(
            filters=Filter.by_id().contains_any(batch),
            limit=len(batch),
            return_properties=_INVENTORY_PROPERTIES,
        )
        found += [_object_page(obj.properties) for obj in response.objects]
    return found


def _object_page(properties: Mapping[str, Any]) -> tuple[uuid.UUID, int]:
    return uuid.UUID(str(properties["document_id"])), int(properties["page_number"])


def _objects_total(collection: WeaviateCollection) -> int:
    return collection.aggregate.over_all(total_count=True).total_count or 0


def _objects_counted(
    collection: WeaviateCollection, *, total: int, exclude: Collection[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """How many objects each document not in `exclude` has (grouping reads every object)."""
    # There are no more groups than objects: a limit well above their count returns every group
    # (Weaviate's default is 100).
    limit = total + _QUERY_MAXIMUM_RESULTS
    response = collection.aggregate.over_all(
        group_by=GroupByAggregate(prop="document_id", limit=limit), total_count=True
    )
    counts = {
        uuid.UUID(str(group.grouped_by.value)): group.total_count or 0 for group in response.groups
    }
    return {
        document_id: count for document_id, count in counts.items() if document_id not in exclude
    }


def _inventory_walked(collection: WeaviateCollection, asked: set[uuid.UUID]) -> Inventory:
    """The inventory read from every object with the cursor: slow (it decodes every page image)
    but with no limit on how many objects a document has."""
    inventory = Inventory(pages={}, others={})
    for obj in collection.iterator(return_properties=_INVENTORY_PROPERTIES):
        document_id, number = _object_page(obj.properties)
        if document_id in asked:
            inventory.pages.setdefault(document_id, set()).add(number)
        else:
            inventory.others[document_id] = inventory.others.get(document_id, 0) + 1
    return inventory


@weaviate_errors("Weaviate listing failed")
def objects_misfiled(*, libraries: Mapping[uuid.UUID, int]) -> set[uuid.UUID]:
    """The ids of these documents' objects whose library is not their document's (`libraries`
    maps each document to its library): a move or a write that went wrong, which searches
    would show to the old library's members (then drop: they are not its rows) and hide from
    the new one's.

    Asked as filters and answered as ids alone, Weaviate reads no object: one query per
    _MISFILED_DOCUMENTS documents, each clause "these documents of library L, library_id not
    L". Over 3 000 objects with 400 KB images (300 documents, 50 libraries) on 2 busy cores it
    took 0.025 s, about 8 ms per 1 000 pages (0.14 s as one query per library); an aggregate
    grouped by document with the min and max of `library_id` took 5.6 s (1.9 s per 1 000
    pages): grouping reads every object. An object with no library at all (indexed before
    libraries, until `weaviate_schema` writes it) matches too: no search finds it either.
    """
    by_library: dict[int, list[str]] = {}
    for document_id, library_id in libraries.items():
        by_library.setdefault(library_id, []).append(str(document_id))
    clauses: list[list[_Filters]] = [[]]
    size = 0
    for library_id, document_ids in by_library.items():
        for start in range(0, len(document_ids), _MISFILED_DOCUMENTS):
            part = document_ids[start : start + _MISFILED_DOCUMENTS]
            if size + len(part) > _MISFILED_DOCUMENTS:
                clauses.append([])
                size = 0
            clauses[-1].append(
                Filter.by_property("document_id").contains_any(part)
                & Filter.by_property("library_id").not_equal(library_id)
            )
            size += len(part)
    collection = collection_get()
    found: set[uuid.UUID] = set()
    for query in clauses:
        if not query:
            continue
        response = collection.query.fetch_objects(
            filters=Filter.any_of(query) if len(query) > 1 else query[0],
            limit=_QUERY_MAXIMUM_RESULTS,
            return_properties=[],
        )
        if len(response.objects) >= _QUERY_MAXIMUM_RESULTS:
            logger.warning("inventory: more misfiled objects than one query returns; some wait")
        found.update(uuid.UUID(str(obj.uuid)) for obj in response.objects)
    return found


@weaviate_errors("Weaviate delete failed")
def pages_delete_numbers(*, document_id: uuid.UUID, numbers: list[int]) -> int:
    """Delete these pages' objects of one document (pages the database no longer has)."""
    if not numbers:
        return 0
    collection = collection_get(write=True)
    ids = [page_uuid(document_id, number) for number in numbers]
    result = collection.data.delete_many(where=Filter.by_id().contains_any(ids))
    return int(result.successful)


@weaviate_errors("Weaviate did not answer")
def server_describe() -> dict[str, Any]:
    """The server's version and modules, and whether the page collection exists."""
    client = client_get()
    meta = client.get_meta()
    exists = client.collections.exists(settings.WEAVIATE_COLLECTION)
    return {
        "version": str(meta.get("version", "")),
        "modules": sorted((meta.get("modules") or {}).keys()),
        "collection": settings.WEAVIATE_COLLECTION,
        "collection_exists": exists,
    }
