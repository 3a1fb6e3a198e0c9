"""Similarity maps: which regions of a page image matched which query token.

Pure numpy, no Django: given a query's token vectors, a page's multi-vector and the layout of
that page's image tokens (from the embedder), it scores every patch and lays the scores out on
the page the way the model tiled it.
"""

from docdb.similarity.maps import (
    ImageLayout,
    LayoutMismatch,
    Tile,
    map_normalize,
    token_maps,
)

__all__ = ["ImageLayout", "LayoutMismatch", "Tile", "map_normalize", "token_maps"]
