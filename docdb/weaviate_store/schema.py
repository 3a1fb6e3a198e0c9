from typing import Any

from django.conf import settings
from weaviate.classes.config import Configure, DataType, Property, Tokenization

from docdb.weaviate_store.client import client_get

VECTOR_NAME = "page"
IMAGE_PROPERTY = "image"


class SchemaMismatch(Exception):
    """The existing collection was made for another embedder or model: vectors would not mix."""


def _properties() -> list[Property]:
    return [
        Property(name="document_id", data_type=DataType.UUID),
        Property(name="owner_id", data_type=DataType.INT),
        Property(name="title", data_type=DataType.TEXT),
        Property(name="file_name", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
        Property(name="page_number", data_type=DataType.INT),
        Property(name="text", data_type=DataType.TEXT),
        Property(name=IMAGE_PROPERTY, data_type=DataType.BLOB),
    ]


def _vector_config() -> Any:
    # On Weaviate Cloud the hosted ColModernVBERT does the work; self-hosted, our embedder
    # does, reached through base_url with the same protocol.
    if settings.WEAVIATE_CLOUD:
        return Configure.MultiVectors.multi2vec_weaviate(
            name=VECTOR_NAME, image_field=IMAGE_PROPERTY, model=settings.WEAVIATE_MODEL
        )
    return Configure.MultiVectors.multi2vec_weaviate(
        name=VECTOR_NAME,
        image_field=IMAGE_PROPERTY,
        base_url=settings.EMBEDDER_URL,  # type: ignore[arg-type]  # pydantic validates the str
        model=settings.WEAVIATE_MODEL,
    )


def _expected_vectorizer() -> dict[str, Any]:
    expected: dict[str, Any] = {"model": settings.WEAVIATE_MODEL}
    if not settings.WEAVIATE_CLOUD:
        expected["baseURL"] = settings.EMBEDDER_URL
    return expected


def collection_describe() -> dict[str, Any]:
    """What Weaviate says about the collection, or {"exists": False}."""
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
    if "multi2multivec-weaviate" not in vector["vectorizer"]:
        problems.append(f"vectorizer is {vector['vectorizer']}, not multi2multivec-weaviate")
    for key, wanted in _expected_vectorizer().items():
        found = vector["settings"].get(key)
        # Weaviate stores base URLs with a trailing slash.
        if isinstance(found, str) and isinstance(wanted, str) and key == "baseURL":
            found, wanted = found.rstrip("/"), wanted.rstrip("/")
        if found != wanted:
            problems.append(f"vectorizer {key} is {found!r}, settings say {wanted!r}")
    return problems


def collection_ensure() -> dict[str, Any]:
    """Create the page collection if missing; refuse to use one configured differently."""
    description = collection_describe()
    if not description["exists"]:
        client_get().collections.create(
            settings.WEAVIATE_COLLECTION,
            description="One object per PDF page, vectorized with ColModernVBERT.",
            properties=_properties(),
            vector_config=[_vector_config()],
        )
        return {**collection_describe(), "created": True}
    problems = _mismatches(description)
    if problems:
        raise SchemaMismatch(
            f"The Weaviate collection {settings.WEAVIATE_COLLECTION!r} does not match the "
            f"settings ({'; '.join(problems)}). Mixing vectors from different embedders gives "
            "meaningless results: run `python manage.py weaviate_schema --recreate` and then "
            "`python manage.py reindex` to rebuild it."
        )
    return {**description, "created": False}


def collection_recreate() -> dict[str, Any]:
    """Drop and create the collection. Every page must be imported again afterwards."""
    client = client_get()
    if client.collections.exists(settings.WEAVIATE_COLLECTION):
        client.collections.delete(settings.WEAVIATE_COLLECTION)
    return collection_ensure()
