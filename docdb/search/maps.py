"""Similarity maps for one page and one query: which regions matched each query token.

The query's token vectors and the page's image layout come from the embedder; the page's
stored multi-vector from Weaviate, for the members of its library only. The math is in
docdb.similarity.
"""

import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from docdb.documents.models import Page
from docdb.embedder_client import (
    EmbedderRefused,
    EmbedderUnavailable,
    image_layout_fetch,
    query_tokens_fetch,
)
from docdb.similarity import ImageLayout, LayoutMismatch, map_normalize, token_maps
from docdb.weaviate_store import WeaviateUnavailable, page_multivector

logger = logging.getLogger(__name__)

CLOUD_REASON = (
    "Similarity maps are off with Weaviate Cloud: they need the query's vector for each of its "
    "tokens and where each page puts its image tokens, which only DocDB's own embedder tells; "
    "Weaviate's hosted model does not."
)


class MapsUnavailable(Exception):
    """No map can be made for this page now; the message is fit to show."""


@dataclass(frozen=True)
class TokenMap:
    text: str
    cells: list[float]  # row by row, 0..1, hottest 1


@dataclass(frozen=True)
class PageMaps:
    rows: int
    cols: int
    tokens: list[TokenMap]
    combined: list[float]


def page_maps_make(*, page: Page, query: str) -> PageMaps:
    """Maps for each word-like query token and for all of them together.

    `page` must already be known to be one the person asking sees; Weaviate checks that the
    object is of the page's library too.
    """
    if settings.WEAVIATE_CLOUD:
        raise MapsUnavailable(CLOUD_REASON)
    try:
        vectors = page_multivector(
            library_ids=[page.document.library_id],
            document_id=page.document_id,
            page_number=page.number,
        )
    except WeaviateUnavailable as exc:
        raise MapsUnavailable("The search index did not answer. Try again in a moment.") from exc
    if not vectors:
        raise MapsUnavailable("This page is not in the search index (yet).")
    try:
        layout_answer = image_layout_fetch(width=page.width, height=page.height)
        query_answer = query_tokens_fetch(query)
    except EmbedderUnavailable as exc:
        logger.warning("embedder failed for maps: %s", exc)
        raise MapsUnavailable("The embedder did not answer. Try again in a moment.") from exc
    except EmbedderRefused as exc:
        raise MapsUnavailable(f"The embedder refused: {exc.detail}") from exc
    try:
        layout = ImageLayout.from_dict(layout_answer)
    except (LayoutMismatch, KeyError, TypeError, ValueError) as exc:
        logger.warning("embedder gave an unusable layout: %s", exc)
        raise MapsUnavailable("The embedder gave an unusable page layout.") from exc
    wanted = [
        index
        for index, token in enumerate(query_answer["tokens"])
        if not token["special"] and any(char.isalnum() for char in token["text"])
    ]
    if not wanted:
        raise MapsUnavailable("The query has no words to map.")
    query_vectors = np.asarray(query_answer["embeddings"], dtype=np.float32)[wanted]
    try:
        maps = token_maps(query_vectors, np.asarray(vectors, dtype=np.float32), layout)
    except LayoutMismatch as exc:
        logger.warning("page %s: %s", page.pk, exc)
        raise MapsUnavailable(
            "This page was indexed with another model or image size; reindex it to see maps."
        ) from exc
    height, width = layout.shape
    return PageMaps(
        rows=height,
        cols=width,
        tokens=[
            TokenMap(text=query_answer["tokens"][index]["text"].strip(), cells=_cells(values))
            for index, values in zip(wanted, maps, strict=True)
        ],
        combined=_cells(maps.sum(axis=0)),
    )


def _cells(values: np.ndarray) -> list[float]:
    return [round(float(value), 3) for value in map_normalize(values).ravel()]
