"""Similarity-map geometry: a match in one region of a page lights up that region, no other.

The first test builds a layout by hand. The second runs the real (tiny) ColModernVBERT
processor on a synthetic page whose only content is one box: which image tokens see ink is read
from the pixel tiles the processor really produces, those tokens get the query's vector, and the
map computed through the embedder's layout must put its hottest cells exactly over the box.
"""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from docdb.embedder.model import Embedder, embedder_load
from docdb.similarity import ImageLayout, LayoutMismatch, Tile, map_normalize, token_maps

pytestmark = pytest.mark.sqlite_pass

DIM = 16


def _unit(index: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[index] = 1.0
    return vector


def test_a_hand_made_layout_puts_a_local_match_in_its_cells() -> None:
    grid, rows, cols, prompt = 4, 3, 2, 5
    tiles = [
        Tile(start=prompt + (row * cols + col) * grid * grid, row=row, col=col)
        for row in range(rows)
        for col in range(cols)
    ]
    tiles.append(Tile(start=prompt + rows * cols * grid * grid, row=None, col=None))
    length = prompt + (rows * cols + 1) * grid * grid + 3
    layout = ImageLayout(length=length, rows=rows, cols=cols, tile_grid=grid, tiles=tuple(tiles))
    page = np.tile(_unit(1), (length, 1))
    # Tile (2, 1), patch rows 1-2 and columns 2-3 show what query token 0 asks for.
    local = tiles[2 * cols + 1].start
    for patch_row in (1, 2):
        for patch_col in (2, 3):
            page[local + patch_row * grid + patch_col] = _unit(0)
    query = np.stack([_unit(0), _unit(5)])

    maps = token_maps(query, page, layout)

    assert maps.shape == (2, rows * grid, cols * grid)
    hottest = {tuple(cell) for cell in np.argwhere(maps[0] == maps[0].max())}
    assert hottest == {(2 * grid + r, grid + c) for r in (1, 2) for c in (2, 3)}
    assert not maps[1].any()  # a token that matches nothing stays cold everywhere
    assert map_normalize(maps[1]).max() == 0


def test_the_global_tile_covers_the_whole_page_coarsely() -> None:
    grid = 2
    layout = ImageLayout(
        length=2 * 2 * 4 + 4,
        rows=2,
        cols=2,
        tile_grid=grid,
        tiles=(
            *(Tile(start=4 * (2 * r + c), row=r, col=c) for r in range(2) for c in range(2)),
            Tile(start=16, row=None, col=None),
        ),
    )
    page = np.tile(_unit(1), (layout.length, 1))
    page[16 + 3] = _unit(0)  # global patch (1, 1): the bottom-right quarter of the page
    maps = token_maps(_unit(0)[None], page, layout)
    assert maps[0, 2:, 2:].min() == 1 and maps[0, :2].max() == 0 and maps[0, :, :2].max() == 0


def test_vectors_that_do_not_fit_the_layout_are_refused() -> None:
    layout = ImageLayout.from_dict(
        {
            "length": 5,
            "rows": 0,
            "cols": 0,
            "tile_grid": 1,
            "tiles": [{"start": 2, "row": None, "col": None}],
        }
    )
    assert layout.shape == (1, 1)
    with pytest.raises(LayoutMismatch):
        token_maps(np.ones((1, DIM)), np.ones((6, DIM)), layout)
    with pytest.raises(LayoutMismatch):
        ImageLayout.from_dict({"length": 5, "rows": 1, "cols": 1, "tile_grid": 1, "tiles": []})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return embedder_load("tiny", device="cpu", cache_dir=tmp_path_factory.mktemp("models"))


def _ink_tokens(embedder: Embedder, image: Image.Image) -> tuple[np.ndarray, list[list[int]]]:
    """For each tile the processor makes, which of its patches contain ink, and the positions
    of each tile's image tokens in the sequence (tiles in the order the model consumes them)."""
    features = embedder.processor.process_images([image])
    tiles = features["pixel_values"][0].numpy()  # (tiles, 3, side, side), white ≈ +1, black ≈ -1
    grid = embedder.geometry()["tile_grid"]
    side = tiles.shape[-1] // grid
    darkest = tiles.min(axis=1).reshape(len(tiles), grid, side, grid, side).min(axis=(2, 4))
    ids = features["input_ids"][0].tolist()
    image_positions = [
        i for i, token in enumerate(ids) if token == embedder.processor.image_token_id
    ]
    per_tile = grid * grid
    runs = [image_positions[i : i + per_tile] for i in range(0, len(image_positions), per_tile)]
    assert len(runs) == len(tiles)
    return darkest < 0, runs


# A box spanning some cells of the map, its edges mid-cell so that resampling cannot blur it into
# a neighbouring cell: an A4 page (4 x 3 tiles of 8 x 8 cells), a landscape slide (3 x 4) and a
# receipt (4 x 1).
@pytest.mark.parametrize(
    ("size", "shape", "cell_rows", "cell_cols"),
    [
        ((1240, 1754), (32, 24), range(20, 23), range(3, 8)),
        ((1920, 1080), (24, 32), range(1, 4), range(25, 30)),
        ((315, 1417), (32, 8), range(5, 7), range(2, 6)),
    ],
)
def test_a_synthetic_page_lights_up_where_its_content_is(
    tiny: Embedder,
    size: tuple[int, int],
    shape: tuple[int, int],
    cell_rows: range,
    cell_cols: range,
) -> None:
    # The page is stretched onto whole tiles, so a cell is a fixed fraction of it.
    cell_height, cell_width = size[1] / shape[0], size[0] / shape[1]
    box = (
        round((cell_cols.start + 0.5) * cell_width),
        round((cell_rows.start + 0.5) * cell_height),
        round((cell_cols.stop - 0.5) * cell_width),
        round((cell_rows.stop - 0.5) * cell_height),
    )
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle(box, fill="black")
    ink, runs = _ink_tokens(tiny, image)
    layout = ImageLayout.from_dict(tiny.image_layout(*size))
    assert layout.shape == shape
    assert layout.length == len(tiny.processor.process_images([image])["input_ids"][0])

    # Prompt tokens and blank patches point one way; patches with ink point where the query
    # token does. The global tile's ink patches match less, so the fine grid decides the peak.
    page = np.tile(_unit(1), (layout.length, 1))
    for tile_index, positions in enumerate(runs):
        is_global = tile_index == len(runs) - 1
        for position, has_ink in zip(positions, ink[tile_index].ravel(), strict=True):
            if has_ink:
                page[position] = 0.6 * _unit(0) + 0.8 * _unit(1) if is_global else _unit(0)
    maps = token_maps(_unit(0)[None], page, layout)[0]

    hottest = {(int(y), int(x)) for y, x in np.argwhere(maps == maps.max())}
    assert hottest == {(y, x) for y in cell_rows for x in cell_cols}


def test_the_pixel_shuffle_keeps_a_tile_s_patches_row_by_row(tiny: Embedder) -> None:
    """Token k of a tile merges the patches of cell (k // grid, k % grid) of its patch grid: the
    order the maps assume. Read off the model's own connector with patches that carry their
    coordinates as features."""
    connector = tiny.model.vlm.connector
    factor = connector.pixel_shuffle_factor
    vision = tiny.model.config.vlm_config.vision_config
    side = vision.image_size // vision.patch_size
    width = vision.hidden_size
    patches = torch.zeros(1, side * side, width)
    for index in range(side * side):
        patches[0, index, 0], patches[0, index, 1] = divmod(index, side)
    merged = connector.pixel_shuffle(patches, factor)[0]  # (grid * grid, width * factor²)
    grid = side // factor
    assert merged.shape[0] == grid * grid == tiny.processor.image_seq_len
    for token in range(grid * grid):
        chunks = merged[token].reshape(factor * factor, width)
        assert {(int(row) // factor, int(col) // factor) for row, col in chunks[:, :2]} == {
            divmod(token, grid)
        }
