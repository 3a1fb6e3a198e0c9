"""A page's multi-vector pooled into a few vectors, for the first stage of a two-stage search.

MaxSim against ~900 token vectors per page is exact and slow; against a few dozen cluster
centroids of them it is cheap and close: a page whose tokens answer the query keeps a centroid
near them. DocDB's vector search finds candidates with the pooled vectors and re-ranks them with
the full ones (docs/benchmarks.md, "Search at scale"). Pure numpy, and deterministic: the same
page always pools to the same vectors, whoever computes them (the embedder for Weaviate, or the
worker with client-side vectors), so imports stay idempotent.
"""

import numpy as np
from threadpoolctl import ThreadpoolController

_ITERATIONS = 8
# The matrices are small: BLAS threads cost more than they save, and on a busy machine (the
# embedder's model thread, other requests) they made pooling 10x slower than one thread.
# Threads pooling at once may leave the process at one BLAS thread afterwards: harmless here.
_BLAS = ThreadpoolController()
# What a collection made with pooled vectors gets when the setting is later turned off.
POOL_SIZE_DEFAULT = 32


def multivector_pool(vectors: np.ndarray, size: int) -> np.ndarray:
    """(size, dim) unit vectors summarising the (tokens, dim) unit rows of `vectors`.

    Spherical k-means seeded by farthest points: the seeds spread over every kind of token
    (MaxSim rewards the rare, distinctive ones, which plain averaging would wash out), then a
    few rounds move each centroid to the mean direction of the tokens nearest it.
    """
    rows = np.asarray(vectors, dtype=np.float32)
    if rows.ndim != 2 or len(rows) == 0:
        raise ValueError(f"expected a non-empty (tokens, dim) array, got shape {rows.shape}")
    if size < 1:
        raise ValueError(f"pool size must be at least 1, got {size}")
    if len(rows) <= size:
        return _unit(rows)
    with _BLAS.limit(limits=1, user_api="blas"):
        return _spherical_kmeans(rows, size)


def _spherical_kmeans(rows: np.ndarray, size: int) -> np.ndarray:
    centroids = rows[_farthest_points(rows, size)]
    for _ in range(_ITERATIONS):
        nearest = np.argmax(rows @ centroids.T, axis=1)
        members = (nearest[:, None] == np.arange(size)).astype(np.float32)  # (tokens, size)
        sums = members.T @ rows
        counts = members.sum(axis=0)
        # A centroid that won no token keeps its place rather than vanishing.
        centroids = np.where(counts[:, None] > 0, sums, centroids)
        centroids = _unit(centroids)
    return centroids


def _farthest_points(rows: np.ndarray, size: int) -> np.ndarray:
    """Indices of `size` rows, each the one least similar to those already chosen."""
    chosen = [int(np.argmin(rows @ rows.mean(axis=0)))]
    best = rows @ rows[chosen[0]]
    for _ in range(size - 1):
        index = int(np.argmin(best))
        chosen.append(index)
        np.maximum(best, rows @ rows[index], out=best)
    return np.asarray(chosen)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


# Weaviate's multi2multivec-weaviate module sends the collection's model name with each request:
# the pooled named vector names the page model with this suffix, and the embedder answers it
# with pooled page vectors (queries are never pooled).
_POOLED_SUFFIX = "+pooled-"


def pooled_model_name(model: str, size: int) -> str:
    """The model name a pooled named vector asks the embedder for."""
    return f"{model}{_POOLED_SUFFIX}{size}"


def pooled_model_parse(name: str) -> tuple[str, int] | None:
    """(page model, pool size) for a pooled model name, None for any other name."""
    model, found, size = name.rpartition(_POOLED_SUFFIX)
    if not found or not model or not size.isdigit() or not 1 <= int(size) <= 256:
        return None
    return model, int(size)
