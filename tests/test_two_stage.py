"""Two-stage semantic search, for real: pooled vectors find candidates, exact MaxSim ranks them.

Server-side vectors: Weaviate asks the embedder for both named vectors of every page, and the
embedder runs the model once per page (the second request is served from its recent pages).
Client-side vectors: DocDB pools the vectors itself. Either way the stored pooled vectors are
exactly `multivector_pool` of the stored full ones, and search returns pages in exact MaxSim
order over the full vectors. Recall at scale is measured by `make bench` (docs/benchmarks.md).
"""

import importlib
import itertools
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.test import override_settings

from docdb.documents import services
from docdb.documents.libraries import library_ids_visible
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

pytestmark = [pytest.mark.sqlite_pass, pytest.mark.timeout(600)]

QUERY = "tensile strength of bamboo"


def _unique_pdf(directory: Path) -> Path:
    """The five-page report with every page its own: no page image the embedder saw before."""
    marker = uuid.uuid4().hex
    pages = [[*lines, f"copy {marker}"] for lines in PAGE_TEXTS]
    return pdf_make(directory / "unique.pdf", pages=pages, title="Report")


def _stored(
    document_id: uuid.UUID, pages: int, names: tuple[str, ...] = (VECTOR_NAME, POOLED_VECTOR_NAME)
) -> dict[int, dict[str, np.ndarray]]:
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    stored = {}
    for number in range(1, pages + 1):
        obj = collection.query.fetch_object_by_id(
            page_uuid(document_id, number), include_vector=True
        )
        assert obj is not None
        stored[number] = {name: np.asarray(obj.vector[name], dtype=np.float32) for name in names}
    return stored


def _numbers(hits: list[Any]) -> list[int]:
    """The page numbers of search hits, through the ids the pages were stored under."""
    number = {page.search_id: page.number for page in Page.objects.all()}
    return [number[hit.object_id] for hit in hits]


def _maxsim(query: np.ndarray, page: np.ndarray) -> float:
    # In float64: the oracle's own rounding stays far below Weaviate's float32 sums.
    return float((query.astype(np.float64) @ page.T.astype(np.float64)).max(axis=1).sum())


def _exact(document_id: uuid.UUID) -> dict[int, float]:
    """The oracle: exact MaxSim of the query against each stored page, computed here."""
    query = np.asarray(query_embed(QUERY), dtype=np.float32)
    stored = _stored(document_id, 5, names=(VECTOR_NAME,))
    return {number: _maxsim(query, vectors[VECTOR_NAME]) for number, vectors in stored.items()}


def _assert_ranked(hits: list[Any], oracle: dict[int, float], *, tolerance: float) -> None:
    """The hits are the oracle's best pages, best first: each hit carries the oracle's score for
    its page (within Weaviate's float32 rounding, `tolerance`), and the scores never rise.

    Scores, not positions, decide, so pages the oracle scores alike may come in either order;
    the tiny model's pages differ by little more than 1e-4."""
    numbers = _numbers(hits)
    assert numbers, "no hits"
    for hit, number in zip(hits, numbers, strict=True):
        assert hit.score == pytest.approx(oracle[number], abs=tolerance), (numbers, oracle)
    for better, worse in itertools.pairwise(hits):
        assert better.score >= worse.score, (numbers, oracle)
    for number in oracle.keys() - set(numbers):
        assert oracle[number] <= hits[-1].score + tolerance, (numbers, oracle)


def _fused(alpha: float, vector: dict[int, float], keyword: dict[int, float]) -> dict[int, float]:
    """Weaviate's relative score fusion: each half's scores scaled to 0..1 over the pages it
    found (all of them the weight when alike), weighted by `alpha` and 1 - `alpha`, and summed;
    a page a half did not find gets nothing from it (usecases/traverser/hybrid in Weaviate)."""

    def scaled(scores: dict[int, float]) -> dict[int, float]:
        low, high = min(scores.values()), max(scores.values())
        return {n: 1.0 if high == low else (s - low) / (high - low) for n, s in scores.items()}

    vector_part, keyword_part = scaled(vector), scaled(keyword)
    return {
        number: alpha * vector_part[number] + (1 - alpha) * keyword_part.get(number, 0.0)
        for number in vector
    }


def _check_pooled_and_exact_order(document_id: uuid.UUID) -> None:
    library_ids = [Document.objects.get(id=document_id).library_id]
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

    hits = pages_search(library_ids=library_ids, query=QUERY, mode=SearchMode.VECTOR, limit=5)
    _assert_ranked(hits, exact, tolerance=1e-4)

    # Two candidates: the two best by pooled MaxSim, then ordered by exact MaxSim.
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    objects = weaviate_pages.two_stage_search(
        collection,
        query.tolist(),
        filters=weaviate_pages._library_filter(library_ids),
        candidates=2,
        return_properties=["page_number"],
    )
    found = [obj.properties["page_number"] for obj in objects]
    # The test model's pages score within ~1e-4 of each other: pages tied with the second best
    # (within float32 rounding) may stand in for it.
    second = sorted(pooled.values(), reverse=True)[1]
    assert len(found) == 2 and all(pooled[n] >= second - 1e-4 for n in found), (found, pooled)
    # Re-ranked by exact MaxSim, Weaviate's float32 sums against ours (within rounding).
    assert exact[found[0]] >= exact[found[1]] - 1e-4, (found, exact)

    # Hybrid search fuses over the same candidates, in the order of Weaviate's fusion of exact
    # MaxSim and BM25 scores (pages 2 and 4 name bamboo; the others score nothing): all vector
    # at alpha 1, all keyword at alpha 0.
    keyword_hits = pages_search(
        library_ids=library_ids, query=QUERY, mode=SearchMode.KEYWORD, limit=5
    )
    keyword = _numbers(keyword_hits)
    assert keyword == [2, 4]
    bm25 = {number: hit.score for hit, number in zip(keyword_hits, keyword, strict=True)}
    # Scaling the close MaxSim scores to 0..1 divides Weaviate's float32 rounding of them (a unit
    # or two in the last place, ~2e-6 at 18) by their spread: the tiny model's noise vectors,
    # over a thousand a page, give the five pages scores within ~1e-4 of each other.
    spread = max(exact.values()) - min(exact.values())
    rounding = 2 * float(np.spacing(np.float32(max(exact.values())))) / spread
    for alpha in (0.0, 0.25, 0.5, 0.75, 1.0):
        hits = pages_search(
            library_ids=library_ids, query=QUERY, mode=SearchMode.HYBRID, limit=5, alpha=alpha
        )
        _assert_ranked(hits, _fused(alpha, exact, bm25), tolerance=5e-3 + alpha * rounding)

    # Similar pages: the owner's other pages in exact MaxSim order against page 1's vectors.
    page = stored[1][VECTOR_NAME]
    similar = weaviate_pages.pages_similar(
        library_ids=library_ids,
        vector=page.tolist(),
        exclude_document_id=document_id,
        exclude_page_number=1,
        limit=3,
    )
    others = {number: _maxsim(page, vectors[VECTOR_NAME]) for number, vectors in stored.items()}
    del others[1]
    assert len(similar) == 3
    _assert_ranked(similar, others, tolerance=1e-2)


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
    for name in ("_semantic_tiers", "_hybrid_tiers"):
        original = getattr(weaviate_pages, name)
        monkeypatch.setattr(
            weaviate_pages,
            name,
            lambda *args, name=name, original=original, **kwargs: (
                calls.append(name) or original(*args, **kwargs)
            ),
        )
    _check_pooled_and_exact_order(document.id)
    # Semantic search, similar pages and the five hybrid searches each took their two stages.
    assert calls.count("_semantic_tiers") == 2 and calls.count("_hybrid_tiers") == 5

    # Turned off, search is one-stage again and ranks the pages in the same exact order.
    with override_settings(WEAVIATE_POOLED_VECTORS=0):
        calls.clear()
        hits = pages_search(
            library_ids=library_ids_visible(user=owner),
            query=QUERY,
            mode=SearchMode.VECTOR,
            limit=5,
        )
        assert not calls
        _assert_ranked(hits, _exact(document.id), tolerance=1e-4)


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
            _check_pooled_and_exact_order(document.id)
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
            hits = pages_search(
                library_ids=library_ids_visible(user=owner),
                query=QUERY,
                mode=SearchMode.VECTOR,
                limit=5,
            )
            assert len(hits) == 5
            _assert_ranked(hits, _exact(document.id), tolerance=1e-4)
    finally:
        client_get().collections.delete("DocDBOldPage")


def test_pages_are_stored_under_the_ids_search_returns() -> None:
    """Page.search_id, filled by migration 0003 for pages made before it, is `page_uuid`."""
    migration = importlib.import_module("docdb.documents.migrations.0003_page_search_id")
    document_id = uuid.uuid4()
    for number in (1, 2, 417):
        assert str(migration.search_id(document_id, number)) == page_uuid(document_id, number)
