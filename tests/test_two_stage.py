"""Two-stage semantic search, for real: pooled vectors find candidates, exact MaxSim ranks them.

Server-side vectors: Weaviate asks the embedder for both named vectors of every page, and the
embedder runs the model once per page (the second request is served from its recent pages).
Client-side vectors: DocDB pools the vectors itself. Either way the stored pooled vectors are
exactly `multivector_pool` of the stored full ones, and search returns pages in exact MaxSim
order over the full vectors. Recall at scale is measured by `make bench` (docs/benchmarks.md).
"""

import importlib
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.test import override_settings

from docdb.documents import services
from docdb.documents.models import Document, Page, Status
from docdb.embedder_client import query_embed
from docdb.pooling import multivector_pool
from docdb.weaviate_store import (
    SearchMode,
    client_get,
    collection_ensure,
    page_uuid,
    pages_search,
)
from docdb.weaviate_store import pages as weaviate_pages
from docdb.weaviate_store.schema import POOLED_VECTOR_NAME, VECTOR_NAME
from tests.conftest import Stack
from tests.helpers import PAGE_TEXTS, document_stored, document_wait, report_pdf, user_make
from tests.pdf_factory import pdf_make

pytestmark = pytest.mark.timeout(600)

QUERY = "tensile strength of bamboo"


def _unique_pdf(directory: Path) -> Path:
    """The five-page report with every page its own: no page image the embedder saw before."""
    marker = uuid.uuid4().hex
    pages = [[*lines, f"copy {marker}"] for lines in PAGE_TEXTS]
    return pdf_make(directory / "unique.pdf", pages=pages, title="Report")


def _stored(document_id: uuid.UUID, pages: int) -> dict[int, dict[str, np.ndarray]]:
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    stored = {}
    for number in range(1, pages + 1):
        obj = collection.query.fetch_object_by_id(
            page_uuid(document_id, number), include_vector=True
        )
        assert obj is not None
        stored[number] = {
            name: np.asarray(obj.vector[name], dtype=np.float32)
            for name in (VECTOR_NAME, POOLED_VECTOR_NAME)
        }
    return stored


def _numbers(hits: list[Any]) -> list[int]:
    """The page numbers of search hits, through the ids the pages were stored under."""
    number = {page.search_id: page.number for page in Page.objects.all()}
    return [number[hit.object_id] for hit in hits]


def _maxsim(query: np.ndarray, page: np.ndarray) -> float:
    return float((query @ page.T).max(axis=1).sum())


def _check_pooled_and_exact_order(owner_id: int, document_id: uuid.UUID) -> None:
    stored = _stored(document_id, 5)
    for vectors in stored.values():
        assert vectors[POOLED_VECTOR_NAME].shape == (settings.WEAVIATE_POOLED_VECTORS, 128)
        expected = multivector_pool(vectors[VECTOR_NAME], settings.WEAVIATE_POOLED_VECTORS)
        np.testing.assert_allclose(vectors[POOLED_VECTOR_NAME], expected, atol=1e-4)

    query = np.asarray(query_embed(QUERY), dtype=np.float32)
    exact = {number: _maxsim(query, vectors[VECTOR_NAME]) for number, vectors in stored.items()}
    pooled = {
        number: _maxsim(query, vectors[POOLED_VECTOR_NAME]) for number, vectors in stored.items()
    }

    hits = pages_search(owner_id=owner_id, query=QUERY, mode=SearchMode.VECTOR, limit=5)
    assert _numbers(hits) == sorted(exact, key=lambda n: -exact[n])
    for hit, number in zip(hits, _numbers(hits), strict=True):
        assert hit.score == pytest.approx(exact[number], abs=1e-3)

    # Two candidates: the two best by pooled MaxSim, then ordered by exact MaxSim.
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    objects = weaviate_pages.two_stage_search(
        collection,
        query.tolist(),
        filters=weaviate_pages._owner_filter(owner_id),
        candidates=2,
        return_properties=["page_number"],
    )
    found = [obj.properties["page_number"] for obj in objects]
    assert set(found) == set(sorted(pooled, key=lambda n: -pooled[n])[:2])
    assert found == sorted(found, key=lambda n: -exact[n])

    # Hybrid search fuses over the same candidates: all vector is the exact MaxSim order, all
    # keyword is BM25's order (pages 2 and 4 name bamboo; the others score nothing).
    def hybrid(alpha: float) -> list[int]:
        found = pages_search(
            owner_id=owner_id, query=QUERY, mode=SearchMode.HYBRID, limit=5, alpha=alpha
        )
        return _numbers(found)

    assert hybrid(1.0) == sorted(exact, key=lambda n: -exact[n])
    keyword = _numbers(
        pages_search(owner_id=owner_id, query=QUERY, mode=SearchMode.KEYWORD, limit=5)
    )
    assert keyword == [2, 4]
    assert hybrid(0.0)[:2] == keyword
    assert sorted(hybrid(0.5)) == [1, 2, 3, 4, 5]

    # Similar pages: the owner's other pages in exact MaxSim order against page 1's vectors.
    page = stored[1][VECTOR_NAME]
    similar = weaviate_pages.pages_similar(
        owner_id=owner_id,
        vector=page.tolist(),
        exclude_document_id=document_id,
        exclude_page_number=1,
        limit=3,
    )
    others = {number: _maxsim(page, vectors[VECTOR_NAME]) for number, vectors in stored.items()}
    del others[1]
    assert _numbers(similar) == sorted(others, key=lambda n: -others[n])[:3]
    for hit, number in zip(similar, _numbers(similar), strict=True):
        assert hit.score == pytest.approx(others[number], abs=1e-2)


def test_server_side_pages_get_pooled_vectors_from_one_forward_pass(
    live: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = user_make()
    before: Any = live.embedder.health()["counters"]
    # Pages seen before (other tests' copies of the report) would come from recent pages.
    document = document_stored(owner, _unique_pdf(tmp_path))
    services.document_queue(document_id=document.id)
    assert document_wait(document.id).status == Status.READY

    after: Any = live.embedder.health()["counters"]
    # Weaviate asked for every page twice (page and pooled vectors); the model saw each once.
    assert after["images_embedded"] - before["images_embedded"] == 10
    assert after["images_computed"] - before["images_computed"] == 5
    assert after["recent_hits"] - before["recent_hits"] == 5

    calls: list[str] = []
    for name in ("two_stage_search", "two_stage_hybrid"):
        original = getattr(weaviate_pages, name)
        monkeypatch.setattr(
            weaviate_pages,
            name,
            lambda *args, name=name, original=original, **kwargs: (
                calls.append(name) or original(*args, **kwargs)
            ),
        )
    _check_pooled_and_exact_order(owner.pk, document.id)
    # Semantic search, similar pages and the hybrid searches each took their two stages.
    assert calls.count("two_stage_search") == 3 and calls.count("two_stage_hybrid") == 3

    # Turned off, search is one-stage again and finds the same pages.
    with override_settings(WEAVIATE_POOLED_VECTORS=0):
        calls.clear()
        hits = pages_search(owner_id=owner.pk, query=QUERY, mode=SearchMode.VECTOR, limit=5)
        assert not calls
        assert set(_numbers(hits)) == {1, 2, 3, 4, 5}


def test_client_side_vectors_are_pooled_by_docdb(live: Stack, tmp_path: Path) -> None:
    owner = user_make()
    with override_settings(VECTORIZE="client", WEAVIATE_COLLECTION="DocDBClientPage"):
        collection_ensure()
        try:
            config = client_get().collections.use("DocDBClientPage").config.get()
            pooled = config.vector_config[POOLED_VECTOR_NAME]  # type: ignore[index]
            assert pooled.vectorizer.vectorizer == "none"
            document = document_stored(owner, report_pdf(tmp_path, salt="client-two-stage"))
            services.document_ingest(document_id=document.id)
            assert Document.objects.get(id=document.id).status == Status.READY
            _check_pooled_and_exact_order(owner.pk, document.id)
        finally:
            client_get().collections.delete("DocDBClientPage")


def test_a_collection_without_pooled_vectors_still_searches_in_one_stage(
    live: Stack, tmp_path: Path
) -> None:
    """Collections made before two-stage search keep working, and say how to upgrade."""
    owner = user_make()
    with override_settings(WEAVIATE_POOLED_VECTORS=0, WEAVIATE_COLLECTION="DocDBOldPage"):
        collection_ensure()
    try:
        with override_settings(WEAVIATE_COLLECTION="DocDBOldPage"):
            description = collection_ensure()
            assert POOLED_VECTOR_NAME not in description["vectors"]
            assert "weaviate_schema --recreate" in description["note"]
            document = document_stored(owner, report_pdf(tmp_path, salt="one-stage"))
            services.document_ingest(document_id=document.id)
            hits = pages_search(owner_id=owner.pk, query=QUERY, mode=SearchMode.VECTOR, limit=5)
            assert set(_numbers(hits)) == {1, 2, 3, 4, 5}
    finally:
        client_get().collections.delete("DocDBOldPage")


def test_pages_are_stored_under_the_ids_search_returns() -> None:
    """Page.search_id, filled by migration 0003 for pages made before it, is `page_uuid`."""
    migration = importlib.import_module("docdb.documents.migrations.0003_page_search_id")
    document_id = uuid.uuid4()
    for number in (1, 2, 417):
        assert str(migration.search_id(document_id, number)) == page_uuid(document_id, number)
