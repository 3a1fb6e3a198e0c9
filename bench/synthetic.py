"""Synthetic multi-vectors shaped like ColModernVBERT's: unit 128-dim token vectors per page.

Real page embeddings are not isotropic noise: all tokens lean towards a shared direction, tokens
of a page gather around a few concepts, and concepts recur across pages (topics). Random unit
vectors would make every page equally far from every query, which flatters no index and says
nothing about recall. So each page is built from
- a direction shared by all tokens (unrelated tokens are not orthogonal),
- a dozen concepts: most from its document's (pages come in documents of 20 that resemble each
  other), each of those a mix of one of `TOPICS` topics shared across the collection and
  something of the document's own; the rest the page's own,
- per-token noise,
and a query is 20 noisy tokens about 4 concepts of one page. So a query has one best page, then
pages of the same document that share some of its concepts, then the rest. Every page is generated
from its number alone, so the ground truth can regenerate pages chunk by chunk instead of holding
10 000 x 1 000 x 128 floats at once. Pages can come in several sizes, as A4 and US Letter pages
do (882 and 1 146 vectors; bench/geometry.py).
"""

from collections.abc import Iterator, Mapping

import numpy as np

DIM = 128
TOPICS = 256
PAGES_PER_DOCUMENT = 20
DOCUMENT_CONCEPTS = 24
PAGE_CONCEPTS_SHARED = 8  # of its document's concepts
PAGE_CONCEPTS_OWN = 4
QUERY_CONCEPTS = 4
QUERY_TOKENS = 20
_SHARED_WEIGHT = 0.55
_TOKEN_NOISE = 0.8
_QUERY_NOISE = 1.0


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


class Corpus:
    """Pages 0..n-1, reproducible from `seed`, of `tokens_per_page` vectors each: one count for
    every page, or counts with their shares of the pages (e.g. {882: 0.5, 1146: 0.5})."""

    def __init__(
        self,
        *,
        tokens_per_page: int | Mapping[int, float],
        seed: int = 7,
        own_concepts: int = PAGE_CONCEPTS_OWN,
    ) -> None:
        mix = {tokens_per_page: 1.0} if isinstance(tokens_per_page, int) else tokens_per_page
        self._counts = np.array(list(mix), dtype=np.int64)
        self._shares = np.array(list(mix.values()), dtype=np.float64) / sum(mix.values())
        self.max_tokens = int(self._counts.max())
        self.mean_tokens = float(self._counts @ self._shares)
        self.seed = seed
        # More concepts of its own make a page's tokens spread wider (harder to pool).
        self.own_concepts = own_concepts
        rng = np.random.default_rng(seed)
        self.shared = _unit(rng.standard_normal(DIM))
        self.topics = _unit(rng.standard_normal((TOPICS, DIM)))

    def _document_concepts(self, document: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, document, 3))
        topics = self.topics[rng.integers(0, TOPICS, DOCUMENT_CONCEPTS)]
        return _unit(topics + _unit(rng.standard_normal((DOCUMENT_CONCEPTS, DIM))))

    def concepts(self, page: int) -> np.ndarray:
        """The page's concepts: some of its document's (pages of a document resemble each
        other, as in a real collection), some its own."""
        rng = np.random.default_rng((self.seed, page, 0))
        document = self._document_concepts(page // PAGES_PER_DOCUMENT)
        shared = document[rng.choice(DOCUMENT_CONCEPTS, PAGE_CONCEPTS_SHARED, replace=False)]
        own = _unit(rng.standard_normal((self.own_concepts, DIM)))
        return np.concatenate([shared, own])

    def tokens(self, page: int) -> int:
        """How many vectors the page has (its paper size)."""
        if len(self._counts) == 1:
            return int(self._counts[0])
        rng = np.random.default_rng((self.seed, page, 4))
        return int(rng.choice(self._counts, p=self._shares))

    def page(self, page: int) -> np.ndarray:
        """(tokens, 128) float32 unit vectors."""
        rng = np.random.default_rng((self.seed, page, 1))
        concepts = self.concepts(page)
        tokens = self.tokens(page)
        chosen = concepts[rng.integers(0, len(concepts), tokens)]
        noise = rng.standard_normal((tokens, DIM)) / np.sqrt(DIM)
        return _unit(_SHARED_WEIGHT * self.shared + chosen + _TOKEN_NOISE * noise)

    def pages(self, start: int, stop: int) -> np.ndarray:
        """Pages start..stop-1 stacked: (pages, max_tokens, 128). A page with fewer vectors
        repeats its own, which leaves its MaxSim against any query as it is."""
        return np.stack(
            [np.resize(self.page(number), (self.max_tokens, DIM)) for number in range(start, stop)]
        )

    def query(self, number: int, *, pages: int) -> np.ndarray:
        """A query about one of the first `pages` pages: (QUERY_TOKENS, 128)."""
        rng = np.random.default_rng((self.seed, number, 2))
        concepts = self.concepts(int(rng.integers(0, pages)))
        asked = concepts[rng.choice(len(concepts), QUERY_CONCEPTS, replace=False)]
        chosen = asked[rng.integers(0, QUERY_CONCEPTS, QUERY_TOKENS)]
        noise = rng.standard_normal((QUERY_TOKENS, DIM)) / np.sqrt(DIM)
        return _unit(_SHARED_WEIGHT * self.shared + chosen + _QUERY_NOISE * noise)


def maxsim_exact(
    corpus: Corpus, queries: np.ndarray, *, pages: int, chunk: int = 32
) -> Iterator[np.ndarray]:
    """Exact MaxSim scores of every query against pages 0..pages-1, chunk by chunk.

    Yields (queries, chunk) arrays in page order; `queries` is (n_queries, tokens, 128).
    """
    n_queries, tokens, _ = queries.shape
    flat = queries.reshape(n_queries * tokens, DIM).T  # (128, n_queries * tokens)
    for start in range(0, pages, chunk):
        block = corpus.pages(start, min(pages, start + chunk))  # (c, t, 128)
        similarity = block @ flat  # (c, t, n_queries * tokens)
        best = similarity.max(axis=1).reshape(len(block), n_queries, tokens)
        yield best.sum(axis=2).T  # (n_queries, c)


def top_k_exact(corpus: Corpus, queries: np.ndarray, *, pages: int, k: int) -> np.ndarray:
    """The k best pages per query by exact MaxSim: (n_queries, k) page numbers."""
    scores = np.concatenate(list(maxsim_exact(corpus, queries, pages=pages)), axis=1)
    return np.argsort(-scores, axis=1)[:, :k]
