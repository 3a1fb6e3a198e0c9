"""The one place that talks to Weaviate: client, collection schema, page import, queries.

Nothing else in DocDB imports `weaviate`. Every function takes plain values (ids, strings,
bytes) so the pipeline and the search views stay free of client details.
"""

from docdb.weaviate_store.client import (
    WeaviateImportError,
    WeaviateUnavailable,
    client_close,
    client_get,
)
from docdb.weaviate_store.inventory import (
    objects_misfiled,
    pages_delete_numbers,
    pages_inventory,
    server_describe,
)
from docdb.weaviate_store.pages import (
    PageHit,
    PageObject,
    QueryRefused,
    Ranking,
    SearchMode,
    TieKeys,
    objects_library_set,
    page_multivector,
    page_uuid,
    page_vector,
    pages_count,
    pages_delete,
    pages_library_set,
    pages_ranked,
    pages_retitle,
    pages_search,
    pages_similar,
    pages_upsert,
    pages_without_library,
)
from docdb.weaviate_store.schema import (
    SchemaMismatch,
    collection_describe,
    collection_ensure,
    collection_recreate,
)

__all__ = [
    "PageHit",
    "PageObject",
    "QueryRefused",
    "Ranking",
    "SchemaMismatch",
    "SearchMode",
    "TieKeys",
    "WeaviateImportError",
    "WeaviateUnavailable",
    "client_close",
    "client_get",
    "collection_describe",
    "collection_ensure",
    "collection_recreate",
    "objects_library_set",
    "objects_misfiled",
    "page_multivector",
    "page_uuid",
    "page_vector",
    "pages_count",
    "pages_delete",
    "pages_delete_numbers",
    "pages_inventory",
    "pages_library_set",
    "pages_ranked",
    "pages_retitle",
    "pages_search",
    "pages_similar",
    "pages_upsert",
    "pages_without_library",
    "server_describe",
]
