"""Vectors per page from the paper size (bench/geometry.py), and synthetic pages of mixed sizes
(bench/synthetic.py): what the search benchmark and the sizing in docs/benchmarks.md rest on."""

import numpy as np
import pytest

from bench.geometry import (
    LIBRARIES,
    PageVectors,
    library_vectors_per_page,
    paper_vectors,
    vector_bytes,
)
from bench.synthetic import Corpus, maxsim_exact


@pytest.mark.parametrize(
    ("paper", "tiles", "vectors"),
    [
        ("A4", 13, 882),
        ("US Letter", 17, 1146),
        ("US Legal", 13, 882),
        ("A4 landscape", 13, 881),
        ("slide 16:9", 13, 881),
    ],
)
def test_paper_sizes_become_the_processor_s_tiles(paper: str, tiles: int, vectors: int) -> None:
    assert paper_vectors(paper) == PageVectors(tiles=tiles, vectors=vectors)


def test_a_letter_heavy_library_has_more_vectors_a_page() -> None:
    means = {name: library_vectors_per_page(share) for name, share in LIBRARIES.items()}
    assert means["A4-heavy"] == pytest.approx(0.9 * 882 + 0.1 * 1146)
    assert means["Letter-heavy"] == pytest.approx(0.1 * 882 + 0.9 * 1146)
    assert vector_bytes(1146) == 1146 * 128 * 4


def test_synthetic_pages_of_two_sizes_keep_their_maxsim_when_stacked() -> None:
    corpus = Corpus(tokens_per_page={20: 0.5, 30: 0.5})
    sizes = [corpus.tokens(number) for number in range(40)]
    assert set(sizes) == {20, 30}
    assert [corpus.page(number).shape for number in range(40)] == [(n, 128) for n in sizes]
    assert corpus.mean_tokens == 25 and corpus.max_tokens == 30
    queries = np.stack([corpus.query(number, pages=40) for number in range(3)])
    stacked = np.concatenate(list(maxsim_exact(corpus, queries, pages=40, chunk=16)), axis=1)
    for number in range(40):
        page = corpus.page(number)
        alone = [(query @ page.T).max(axis=1).sum() for query in queries]
        np.testing.assert_allclose(stacked[:, number], alone, rtol=1e-5)
    # One size for every page gives the pages it always gave.
    assert Corpus(tokens_per_page=20).page(3).shape == (20, 128)
