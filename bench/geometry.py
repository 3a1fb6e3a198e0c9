"""Vectors per page from the page's size, and what a library of such pages costs to store.

ColModernVBERT's processor stretches a page to 2048 px on its longest edge, rounds both sides up
to whole 512-px tiles and adds the whole page shrunk to one more tile; every tile becomes 64
vectors, plus a few for the tile markers and the prompt. So the paper size decides a page's
vectors: an A4 page is 4 x 3 tiles, a US Letter page, a little wider, 4 x 4. The counts here
come from running the test model's processor (the real one's image processing, prompt and
geometry; docdb.embedder.testmodel) on a blank page of each size.
"""

from dataclasses import dataclass
from functools import cache

from PIL import Image

from docdb.embedder.testmodel import LONGEST_EDGE, tiny_processor

DIM = 128
# Width x height in PDF points.
PAPER_SIZES = {
    "A4": (595.28, 841.89),
    "US Letter": (612.0, 792.0),
    "US Legal": (612.0, 1008.0),
    "A4 landscape": (841.89, 595.28),
    "slide 16:9": (960.0, 540.0),
}
# Libraries of A4 and US Letter pages: the share of Letter pages.
LIBRARIES = {"A4-heavy": 0.1, "half and half": 0.5, "Letter-heavy": 0.9}


@dataclass(frozen=True)
class PageVectors:
    tiles: int  # including the global one
    vectors: int


@cache
def page_vectors(width: float, height: float) -> PageVectors:
    """The tiles and vectors of a page of width x height (any unit), rendered as DocDB does."""
    scale = LONGEST_EDGE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    features = _processor().process_images([Image.new("RGB", size, "white")])
    return PageVectors(
        tiles=int(features["pixel_values"].shape[1]), vectors=int(features["input_ids"].shape[1])
    )


def paper_vectors(paper: str) -> PageVectors:
    return page_vectors(*PAPER_SIZES[paper])


def library_vectors_per_page(letter_share: float) -> float:
    """Mean vectors per page of a library of A4 and US Letter pages."""
    a4, letter = paper_vectors("A4").vectors, paper_vectors("US Letter").vectors
    return (1 - letter_share) * a4 + letter_share * letter


def vector_bytes(vectors: float, *, bytes_per_value: int = 4) -> float:
    """Bytes of a multi-vector: Weaviate keeps float32, a GPU MaxSim index bfloat16 (2)."""
    return vectors * DIM * bytes_per_value


@cache
def _processor() -> object:
    return tiny_processor()
