from typing import Any

from django.conf import settings
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    ReplicationDeletionStrategy,
    Tokenization,
    VectorDistances,
)

from docdb.pooling import pooled_model_name
from docdb.weaviate_store.client import client_get, weaviate_errors

VECTOR_NAME = "page"
# The page multi-vector pooled into a few vectors: the first stage of semantic search.
POOLED_VECTOR_NAME = "pooled"
IMAGE_PROPERTY = "image"
# Where multi2multivec-weaviate sends inputs when a collection names no base_url (Weaviate stores
# an empty baseURL then): Weaviate Embeddings, the hosted model, reachable from Weaviate Cloud.
HOSTED_EMBEDDINGS_URL = "https://api.embedding.weaviate.io"

# MUVERA's encoding: 2^ksim buckets x dprojections x repetitions dimensions.
MUVERA_KSIM = 5
MUVERA_DPROJECTIONS = 16
MUVERA_REPETITIONS = 20

# How to rebuild the index after a switch of mode or model (README: "Switching mode or model").
REBUILD_COMMAND = "python manage.py weaviate_schema --recreate && python manage.py reindex"


class SchemaMismatch(Exception):
    """The existing collection was made for another embedder or model: vectors would not mix."""


LIBRARY_PROPERTY = "library_id"


def _library_property() -> Property:
    # What every search filters by (docs/libraries.md says why a filter, not a tenant each).
    return Property(name=LIBRARY_PROPERTY, data_type=DataType.INT)


def _properties() -> list[Property]:
    return [
        Property(name="document_id", data_type=DataType.UUID),
        Property(name="owner_id", data_type=DataType.INT),
        _library_property(),
        Property(name="title", data_type=DataType.TEXT),
        Property(name="file_name", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
        Property(name="page_number", data_type=DataType.INT),
        Property(name="text", data_type=DataType.TEXT),
        Property(name=IMAGE_PROPERTY, data_type=DataType.BLOB),
    ]


def vectorize_client_side() -> bool:
    """Whether the worker embeds pages itself (`DOCDB_VECTORIZE=client`) instead of Weaviate.

    Only with a self-hosted Weaviate: Weaviate Cloud's hosted model is reached through Weaviate.
    """
    return settings.VECTORIZE == "client" and not settings.WEAVIATE_CLOUD


def vector_index_config(*, ef: int) -> Any:
    """HNSW over the page multi-vectors, scored with MaxSim (dot products of unit vectors).

    A search whose filter (DocDB's library filter) allows fewer objects than the flat search
    cutoff scans them instead of walking the graph. With MUVERA's 10 240-dim encodings the scan
    costs more than the walk beyond a few thousand pages (docs/benchmarks.md), hence a cutoff
    far below Weaviate's default of 40 000.
    """
    return Configure.VectorIndex.hnsw(
        distance_metric=VectorDistances.DOT,
        ef=ef,
        flat_search_cutoff=settings.WEAVIATE_FLAT_SEARCH_CUTOFF,
    )


def multi_vector_encoding(*, muvera: bool) -> Any:
    """MUVERA, or None for plain multi-vector HNSW.

    With MUVERA, HNSW holds one fixed-size encoding per page instead of ~900 token vectors:
    imports are tens of times faster and memory far smaller, and the candidates it finds are
    re-ranked with exact MaxSim (docs/benchmarks.md measures both). The encoding is 4x
    Weaviate's default (10 240 dims, 40 KB a page): its candidates are better, so fewer need
    re-ranking for the same recall.
    """
    if not muvera:
        return None
    return Configure.VectorIndex.MultiVector.Encoding.muvera(
        ksim=MUVERA_KSIM, dprojections=MUVERA_DPROJECTIONS, repetitions=MUVERA_REPETITIONS
    )


def self_provided_config(*, muvera: bool, ef: int) -> Any:
    """A page multi-vector that DocDB computes and imports itself (client-side vectors)."""
    return Configure.MultiVectors.self_provided(
        name=VECTOR_NAME,
        encoding=multi_vector_encoding(muvera=muvera),
        vector_index_config=vector_index_config(ef=ef),
    )


def self_provided_pooled_config(*, ef: int) -> Any:
    """Pooled vectors that DocDB computes and imports itself (client-side vectors)."""
    return Configure.MultiVectors.self_provided(
        name=POOLED_VECTOR_NAME, vector_index_config=vector_index_config(ef=ef)
    )


def pooled_wanted() -> bool:
    """Whether new collections get pooled vectors: self-hosted only, as only DocDB's embedder
    (or DocDB itself, with client-side vectors) can pool; Weaviate Cloud's model cannot."""
    return settings.WEAVIATE_POOLED_VECTORS > 0 and not settings.WEAVIATE_CLOUD


def pooled_config() -> Any:
    """The pooled vector's configuration: Weaviate asks the embedder for it, under the page
    model's pooled name, or DocDB imports it with client-side vectors."""
    if vectorize_client_side():
        return self_provided_pooled_config(ef=settings.WEAVIATE_POOLED_EF)
    return Configure.MultiVectors.multi2vec_weaviate(
        name=POOLED_VECTOR_NAME,
        image_field=IMAGE_PROPERTY,
        base_url=settings.EMBEDDER_URL,  # type: ignore[arg-type]  # pydantic validates the str
        model=pooled_model_name(settings.WEAVIATE_MODEL, settings.WEAVIATE_POOLED_VECTORS),
        # Plain multi-vector HNSW (no MUVERA): a few dozen vectors a page, every one indexed.
        vector_index_config=vector_index_config(ef=settings.WEAVIATE_POOLED_EF),
    )


def vector_configs() -> list[Any]:
    """The named vectors of a new collection for the current settings."""
    return [vector_config(), pooled_config()] if pooled_wanted() else [vector_config()]


def vector_config() -> Any:
    """The page vector's configuration for the current settings."""
    if vectorize_client_side():
        return self_provided_config(muvera=settings.WEAVIATE_MUVERA, ef=settings.WEAVIATE_HNSW_EF)
    index = vector_index_config(ef=settings.WEAVIATE_HNSW_EF)
    encoding = multi_vector_encoding(muvera=settings.WEAVIATE_MUVERA)
    # On Weaviate Cloud the hosted ColModernVBERT does the work (no base_url); self-hosted, our
    # embedder does, reached through base_url with the same protocol.
    if settings.WEAVIATE_CLOUD:
        return Configure.MultiVectors.multi2vec_weaviate(
            name=VECTOR_NAME,
            image_field=IMAGE_PROPERTY,
            model=settings.WEAVIATE_MODEL,
            encoding=encoding,
            vector_index_config=index,
        )
    return Configure.MultiVectors.multi2vec_weaviate(
        name=VECTOR_NAME,
        image_field=IMAGE_PROPERTY,
        base_url=settings.EMBEDDER_URL,  # type: ignore[arg-type]  # pydantic validates the str
        model=settings.WEAVIATE_MODEL,
        encoding=encoding,
        vector_index_config=index,
    )


def replication_config() -> Any:
    """How many nodes hold each page, for a new collection (None: Weaviate's default of one).

    With replicas, async replication brings a node that was down back up to date, and a delete
    that a node missed wins over the older object it still holds (time-based resolution), so a
    deleted document does not come back from a node that was away."""
    factor = settings.WEAVIATE_REPLICATION_FACTOR
    if factor <= 1:
        return None
    # Weaviate 1.38+ runs async replication for any factor above 1 by itself.
    return Configure.replication(
        factor=factor,
        deletion_strategy=ReplicationDeletionStrategy.TIME_BASED_RESOLUTION,
    )


def sharding_config() -> Any:
    """The shard count for a new collection (None: Weaviate's default, one per node)."""
    shards = settings.WEAVIATE_SHARDS
    return Configure.sharding(desired_count=shards) if shards else None


def _embeddings_url(base_url: object) -> str:
    """One spelling per endpoint: Weaviate adds a trailing slash, and no URL means hosted."""
    return str(base_url or HOSTED_EMBEDDINGS_URL).rstrip("/")


def _embedder_name(base_url: object, model: object) -> str:
    url = _embeddings_url(base_url)
    if url == HOSTED_EMBEDDINGS_URL:
        return f"Weaviate Cloud's hosted model {model!r}"
    return f"the self-hosted embedder at {url} with model {model!r}"


def _embedder_wanted() -> str:
    base_url = "" if settings.WEAVIATE_CLOUD else settings.EMBEDDER_URL
    return _embedder_name(base_url, settings.WEAVIATE_MODEL)


@weaviate_errors("Weaviate cannot describe the collection yet")
def collection_describe() -> dict[str, Any]:
    """What Weaviate says about the collection, or {"exists": False}.

    Just after Weaviate starts, it answers before it has loaded the collection's index ("tried
    to browse non-existing index"): that is Weaviate not ready yet, which callers wait out.
    """
    client = client_get()
    name = settings.WEAVIATE_COLLECTION
    if not client.collections.exists(name):
        return {"exists": False, "name": name}
    config = client.collections.use(name).config.get()
    vectorizers = {
        vector_name: {
            "vectorizer": getattr(vector.vectorizer.vectorizer, "value", None)
            or str(vector.vectorizer.vectorizer),
            "settings": dict(vector.vectorizer.model or {}),
        }
        for vector_name, vector in (config.vector_config or {}).items()
    }
    return {
        "exists": True,
        "name": name,
        "properties": {prop.name: str(prop.data_type.value) for prop in config.properties},
        "vectors": vectorizers,
        "objects": len(client.collections.use(name)),
        "replication_factor": config.replication_config.factor,
        "shards": config.sharding_config.actual_count if config.sharding_config else 1,
    }


def _mismatches(description: dict[str, Any]) -> list[str]:
    problems = []
    missing = {prop.name for prop in _properties()} - set(description["properties"])
    if missing:
        problems.append(f"missing properties: {', '.join(sorted(missing))}")
    vector = description["vectors"].get(VECTOR_NAME)
    if vector is None:
        problems.append(f"no named vector {VECTOR_NAME!r}")
        return problems
    server_side = "multi2multivec-weaviate" in vector["vectorizer"]
    if vectorize_client_side():
        if server_side:
            problems.append(
                "it was made for vectors computed by Weaviate (DOCDB_VECTORIZE=server), but the "
                "settings now ask for vectors computed by DocDB (DOCDB_VECTORIZE=client)"
            )
        return problems
    if not server_side:
        problems.append(f"vectorizer is {vector['vectorizer']}, not multi2multivec-weaviate")
        return problems
    # A switch of mode (self-hosted ↔ Weaviate Cloud), of embedder or of model shows here.
    made_for = _embedder_name(vector["settings"].get("baseURL"), vector["settings"].get("model"))
    wanted = _embedder_wanted()
    if made_for != wanted:
        problems.append(f"it was made for {made_for}, but the settings now ask for {wanted}")
    return problems


@weaviate_errors("Weaviate could not create the collection")
def collection_ensure() -> dict[str, Any]:
    """Create the page collection if missing; refuse to use one configured differently."""
    description = collection_describe()
    if description["exists"] and LIBRARY_PROPERTY not in description["properties"]:
        # Made before libraries: the property is added in place, and `libraries_backfill`
        # writes each existing page's library without embedding it again.
        client_get().collections.use(settings.WEAVIATE_COLLECTION).config.add_property(
            _library_property()
        )
        description = collection_describe()
    if not description["exists"]:
        client_get().collections.create(
            settings.WEAVIATE_COLLECTION,
            description="One object per PDF page, vectorized with ColModernVBERT.",
            properties=_properties(),
            vector_config=vector_configs(),
            replication_config=replication_config(),
            sharding_config=sharding_config(),
        )
        return {**collection_describe(), "created": True}
    problems = _mismatches(description)
    if problems:
        raise SchemaMismatch(
            f"The Weaviate collection {settings.WEAVIATE_COLLECTION!r} does not match the "
            f"settings: {'; '.join(problems)}. Vectors of different models or embedders cannot "
            "be compared, so DocDB will not add new pages to it. To switch, rebuild the index: "
            f"run `{REBUILD_COMMAND}` (every document is imported again; until then search "
            "finds only the pages already re-imported). To go back instead, restore the "
            "previous settings."
        )
    if pooled_wanted() and POOLED_VECTOR_NAME not in description["vectors"]:
        # Made before two-stage search: it still works, with MUVERA's one-stage search.
        description["note"] = (
            "This collection has no pooled vectors, so semantic search runs in one stage "
            "(slower, or less exact, on large collections; docs/benchmarks.md). To add them, "
            f"rebuild the index: run `{REBUILD_COMMAND}`."
        )
    wanted_factor = max(settings.WEAVIATE_REPLICATION_FACTOR, 1)
    if description["replication_factor"] != wanted_factor:
        # Not a mismatch of vectors: the collection works, with its own number of replicas.
        description["note"] = (
            f"The collection keeps {description['replication_factor']} replica(s) of each page; "
            f"DOCDB_WEAVIATE_REPLICATION_FACTOR asks for {wanted_factor}, which applies to new "
            "collections. To change it, rebuild the index: run "
            f"`{REBUILD_COMMAND}` (docs/scaling.md)."
        )
    return {**description, "created": False}


@weaviate_errors("Weaviate could not recreate the collection")
def collection_recreate() -> dict[str, Any]:
    """Drop and create the collection. Every page must be imported again afterwards."""
    client = client_get()
    if client.collections.exists(settings.WEAVIATE_COLLECTION):
        client.collections.delete(settings.WEAVIATE_COLLECTION)
    return collection_ensure()
