"""Pooled multi-vectors, the first stage of two-stage search: deterministic, and close to MaxSim.

Pure numpy; no services. The end-to-end checks (the embedder pools what Weaviate stores, search
re-ranks exactly) are in test_pipeline.py, and recall at scale in docs/benchmarks.md.
"""

import numpy as np
import pytest

from docdb.pooling import multivector_pool, pooled_model_name, pooled_model_parse

DIM = 128


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _page(rng: np.random.Generator, *, concepts: int, tokens: int = 885) -> np.ndarray:
    """Tokens gathered around a few concepts, as a page's patches gather around its contents."""
    centers = _unit(rng.standard_normal((concepts, DIM)))
    chosen = centers[rng.integers(0, concepts, tokens)]
    return _unit(chosen + 0.3 * rng.standard_normal((tokens, DIM)) / np.sqrt(DIM))


def _maxsim(query: np.ndarray, page: np.ndarray) -> float:
    return float((query @ page.T).max(axis=1).sum())


def test_pooling_is_deterministic_unit_and_of_the_asked_size() -> None:
    page = _page(np.random.default_rng(1), concepts=12)
    pooled = multivector_pool(page, 32)
    assert pooled.shape == (32, DIM)
    assert pooled.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    # Imports must be idempotent: the embedder and the worker pool the same page alike.
    np.testing.assert_array_equal(pooled, multivector_pool(page.copy(), 32))


def test_a_page_with_fewer_tokens_than_the_pool_is_kept_whole() -> None:
    page = _page(np.random.default_rng(2), concepts=3, tokens=10)
    np.testing.assert_allclose(multivector_pool(page, 32), page, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((0, DIM)), np.zeros(DIM)])
def test_pooling_refuses_what_is_not_a_multi_vector(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="tokens, dim"):
        multivector_pool(bad, 8)


def test_pooled_maxsim_stays_close_to_exact_maxsim() -> None:
    rng = np.random.default_rng(3)
    page = _page(rng, concepts=20)
    pooled = multivector_pool(page, 32)
    # Queries made of the page's own tokens, as a query about the page matches some of them.
    for _ in range(10):
        query = page[rng.choice(len(page), 20, replace=False)]
        exact, approximate = _maxsim(query, page), _maxsim(query, pooled)
        assert approximate <= exact + 1e-4  # centroids are averages: never above the best token
        assert approximate >= 0.95 * exact


def test_a_rare_distinctive_token_keeps_a_centroid_of_its_own() -> None:
    """MaxSim rewards the one patch that answers a query; pooling must not average it away."""
    rng = np.random.default_rng(4)
    page = _page(rng, concepts=4)
    rare = _unit(rng.standard_normal(DIM))
    page[417] = rare
    pooled = multivector_pool(page, 8)
    assert float((pooled @ rare).max()) > 0.99


def test_pooling_ranks_pages_like_exact_maxsim() -> None:
    """The first stage's job: the exact best pages are among the pooled best few."""
    rng = np.random.default_rng(5)
    pages = [_page(rng, concepts=int(rng.integers(8, 40)), tokens=300) for _ in range(60)]
    pooled = [multivector_pool(page, 32) for page in pages]
    found = 0
    for _ in range(20):
        target = pages[int(rng.integers(0, len(pages)))]
        query = _unit(target[rng.choice(len(target), 12)] + 0.5 * rng.standard_normal((12, DIM)))
        exact = np.argsort([-_maxsim(query, page) for page in pages])[:3]
        approximate = set(np.argsort([-_maxsim(query, page) for page in pooled])[:10].tolist())
        found += len(set(exact.tolist()) & approximate)
    assert found / (20 * 3) >= 0.95


def test_pooled_model_names_round_trip() -> None:
    name = pooled_model_name("ModernVBERT/colmodernvbert", 32)
    assert pooled_model_parse(name) == ("ModernVBERT/colmodernvbert", 32)
    assert pooled_model_parse("ModernVBERT/colmodernvbert") is None
    assert pooled_model_parse("ModernVBERT/colmodernvbert+pooled-0") is None
    assert pooled_model_parse("ModernVBERT/colmodernvbert+pooled-x") is None
    assert pooled_model_parse("+pooled-8") is None
