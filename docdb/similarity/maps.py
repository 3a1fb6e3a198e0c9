"""Per-token patch scores laid out on the page, following the model's tiling.

The Idefics3 image processor behind ColModernVBERT stretches a page to rows x cols tiles of
`tile_size` pixels and adds a global tile: the whole page squeezed into one tile. Each tile
becomes a tile_grid x tile_grid grid of image tokens (after the pixel shuffle), row by row. So
local tile (r, c) covers the page from r/rows to (r+1)/rows of its height and c/cols to
(c+1)/cols of its width, whatever the page's aspect ratio; the global tile covers all of it at a
coarser grain. The page's multi-vector also holds prompt tokens; the layout says where each
tile's image tokens are.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


class LayoutMismatch(ValueError):
    """The page's vectors do not fit the layout (another model or page size made them)."""


@dataclass(frozen=True)
class Tile:
    start: int  # position of the tile's first image token in the page's multi-vector
    row: int | None  # None for the global tile
    col: int | None


@dataclass(frozen=True)
class ImageLayout:
    length: int  # vectors in the page's multi-vector, prompt tokens included
    rows: int  # local tiles down the page; 0 when the page fits one tile and is not split
    cols: int
    tile_grid: int  # image tokens per tile side
    tiles: tuple[Tile, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ImageLayout":
        """Read the embedder's /v1/docdb/image-layout answer, checking it is self-consistent."""
        layout = cls(
            length=int(data["length"]),
            rows=int(data["rows"]),
            cols=int(data["cols"]),
            tile_grid=int(data["tile_grid"]),
            tiles=tuple(
                Tile(
                    start=int(tile["start"]),
                    row=None if tile["row"] is None else int(tile["row"]),
                    col=None if tile["col"] is None else int(tile["col"]),
                )
                for tile in data["tiles"]
            ),
        )
        layout._check()
        return layout

    @property
    def shape(self) -> tuple[int, int]:
        """Cells of a map: the local tiles' patch grid, or the global tile's when not split."""
        if self.rows and self.cols:
            return self.rows * self.tile_grid, self.cols * self.tile_grid
        return self.tile_grid, self.tile_grid

    @property
    def global_tile(self) -> Tile:
        return next(tile for tile in self.tiles if tile.row is None)

    def _check(self) -> None:
        per_tile = self.tile_grid**2
        if sum(tile.row is None for tile in self.tiles) != 1:
            raise LayoutMismatch("a layout has exactly one global tile")
        local = {(tile.row, tile.col) for tile in self.tiles if tile.row is not None}
        if local != {(row, col) for row in range(self.rows) for col in range(self.cols)}:
            raise LayoutMismatch("the local tiles do not cover the rows x cols grid")
        if any(tile.start < 0 or tile.start + per_tile > self.length for tile in self.tiles):
            raise LayoutMismatch("a tile's tokens fall outside the multi-vector")


def token_maps(query: np.ndarray, page: np.ndarray, layout: ImageLayout) -> np.ndarray:
    """Similarity of each query token to each cell of the page: shape (tokens, *layout.shape).

    A cell scores the best similarity of any image token that sees it: its own local patch or
    the global patch over it. That is MaxSim's view: a query token's score comes from whichever
    image token matches it best, local or global.
    """
    if page.ndim != 2 or page.shape[0] != layout.length:
        raise LayoutMismatch(
            f"the page has {page.shape[0]} vectors; its layout expects {layout.length}"
        )
    if query.ndim != 2 or query.shape[1] != page.shape[1]:
        raise LayoutMismatch("query and page vectors differ in dimension")
    scores = (query @ page.T).astype(np.float32)
    grid = layout.tile_grid
    height, width = layout.shape
    coarse = _tile_scores(scores, layout.global_tile, grid)
    # Cell (y, x) of the page grid lies under global patch (y * grid // height, x * grid // width).
    maps = coarse[:, np.arange(height) * grid // height][:, :, np.arange(width) * grid // width]
    for tile in layout.tiles:
        if tile.row is None or tile.col is None:
            continue
        region = maps[
            :,
            tile.row * grid : (tile.row + 1) * grid,
            tile.col * grid : (tile.col + 1) * grid,
        ]
        np.maximum(region, _tile_scores(scores, tile, grid), out=region)
    return maps


def _tile_scores(scores: np.ndarray, tile: Tile, grid: int) -> np.ndarray:
    # A tile's tokens are its patch grid row by row (the pixel shuffle keeps that order).
    return scores[:, tile.start : tile.start + grid * grid].reshape(-1, grid, grid)


def map_normalize(values: np.ndarray) -> np.ndarray:
    """One map scaled to 0..1, its hottest cell 1; a flat map is all 0 (nothing stands out)."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)
