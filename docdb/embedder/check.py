"""`python -m docdb.embedder check`: what a person runs after downloading the model.

It loads the model the way the service does (same settings, same checks), embeds a rendered
sample page, three unrelated pages and queries, and says whether the sample page ranks first
for queries taken from its own text (MaxSim, as search scores). With the random test model it
runs too, but its rankings are noise.
"""

import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from docdb.embedder.config import EmbedderConfig
from docdb.embedder.model import Embedder, ModelLoadError, embedder_configured


@dataclass(frozen=True)
class Page:
    title: str
    lines: tuple[str, ...]


# The sample page and three pages about other things, each with text of its own.
SAMPLE = Page(
    "Harbour Bridge maintenance report, spring 2026",
    (
        "The north cable anchorage was repainted in March after the winter storms.",
        "Inspectors found corrosion on fourteen deck bolts; all of them were replaced.",
        "Traffic was limited to one lane for nine nights while the joints were resealed.",
        "Total cost of the works: 182,400 euros, within the approved budget.",
    ),
)
OTHERS = (
    Page(
        "Sourdough bread",
        (
            "Mix 500 g of flour, 350 g of water, 100 g of starter and 10 g of salt.",
            "Let the dough rise overnight in a cool kitchen, folding it twice.",
            "Bake for 45 minutes at 240 degrees in a covered cast-iron pot.",
        ),
    ),
    Page(
        "Regional football league, week 12",
        (
            "Riverside United lead the table with 31 points after beating Hillford 3-1.",
            "Portmouth Athletic are second on goal difference after a goalless draw.",
            "The top scorer, with eleven goals, plays for Eastfield Rovers.",
        ),
    ),
    Page(
        "The planets of the solar system",
        (
            "Jupiter is the largest planet, more than eleven times as wide as the Earth.",
            "Mars looks red because iron oxide covers its dusty surface.",
            "Saturn's rings are made of ice and rock, most pieces smaller than a house.",
        ),
    ),
)
# Queries a person might type about the sample page, and about the other pages.
OWN_QUERIES = (
    "corrosion on the deck bolts of the bridge",
    "how much did the bridge maintenance cost",
    "when was the cable anchorage repainted",
)
UNRELATED_QUERIES = (
    "how long to bake sourdough bread",
    "which team leads the football league",
    "what is the largest planet",
)
T = TypeVar("T")

# An A4 page rendered at 150 dpi, as DocDB renders uploaded PDFs.
PAGE_SIZE = (1240, 1754)


def check_run(config: EmbedderConfig, out: Callable[[str], None] = print) -> int:
    """0 when the model loads and finds the sample page (or is the random test model), 1 when it
    cannot load, 2 when a real model ranks the pages wrongly."""
    out(f"Loading {config.model} (DOCDB_EMBEDDER_MODEL) on {config.device} ...")
    started = time.perf_counter()
    try:
        embedder = embedder_configured(config)
    except ModelLoadError as exc:
        out(f"FAILED to load the model: {exc}")
        return 1
    _describe(embedder, time.perf_counter() - started, out)
    pages = [SAMPLE, *OTHERS]
    width, height = PAGE_SIZE
    out(f"\nPages (A4 at 150 dpi, {width} x {height} px), embedded one at a time:")
    page_vectors = []
    for index, page in enumerate(pages):
        vectors, seconds = _embed_timed(embedder.embed_images, page_render(page))
        page_vectors.append(vectors)
        label = "sample" if index == 0 else f"other {index}"
        out(f"  {label:<8} {page.title[:48]:<48} {len(vectors):>5} vectors  {seconds:6.2f} s")
    out("\nQueries, embedded one at a time; the sample page's rank of 4 by MaxSim:")
    wrong = 0
    for own, queries in ((True, OWN_QUERIES), (False, UNRELATED_QUERIES)):
        for query in queries:
            vectors, seconds = _embed_timed(embedder.embed_queries, query)
            rank = sample_rank(vectors, page_vectors)
            right = (rank == 1) == own
            wrong += not right
            verdict = "noise" if embedder.random_test_model else "ok" if right else "WRONG"
            kind = "own" if own else "unrelated"
            out(
                f"  {kind:<9} {query[:42]!r:<46} {len(vectors):>3} vectors  {seconds:6.2f} s  "
                f"rank {rank}  {verdict}"
            )
    return _verdict(embedder, wrong, out)


def _describe(embedder: Embedder, load_seconds: float, out: Callable[[str], None]) -> None:
    info = embedder.info()
    if embedder.random_test_model:
        out(f"model     {embedder.name}: the RANDOM TEST MODEL, whose rankings are noise")
    else:
        out(f"model     {embedder.name}")
    out(f"revision  {info['revision'] or 'not from the hub'}")
    out(f"weights   sha256 {info['weights_sha256']}")
    out(
        f"device    {info['device']}, {info['dtype']}; page images preprocessed by "
        f"{info['image_backend']} on {info['image_device']}, "
        f"{info['geometry']['longest_edge']} px longest edge"
    )
    out(f"load      {load_seconds:.2f} s (with a download, if any)")


def _verdict(embedder: Embedder, wrong: int, out: Callable[[str], None]) -> int:
    total = len(OWN_QUERIES) + len(UNRELATED_QUERIES)
    if embedder.random_test_model:
        out(
            "\nRankings are NOISE with the random test model: this run shows only that the model "
            "loads and embeds pages and queries. Load the real model to check retrieval."
        )
        return 0
    if wrong:
        out(
            f"\nFAILED: {wrong} of {total} rankings are wrong. A model with weights in place ranks "
            "the sample page first for its own queries and not for the others: check the "
            "revision, the weights checksum and the image backend above."
        )
        return 2
    out(
        f"\nOK: all {total} rankings are right: the sample page ranks first for its own queries "
        "and not for the unrelated ones."
    )
    return 0


def page_render(page: Page) -> Image.Image:
    """A white A4 page with a heading and paragraphs, like a rendered PDF page."""
    image = Image.new("RGB", PAGE_SIZE, "white")
    draw = ImageDraw.Draw(image)
    heading = ImageFont.load_default(size=52)
    body = ImageFont.load_default(size=34)
    top = 160
    for row in textwrap.wrap(page.title, width=34):
        draw.text((120, top), row, fill="black", font=heading)
        top += 70
    top += 60
    for line in page.lines:
        for row in textwrap.wrap(line, width=56):
            draw.text((120, top), row, fill="black", font=body)
            top += 50
        top += 30
    return image


def sample_rank(query: np.ndarray, pages: Sequence[np.ndarray]) -> int:
    """The sample page's (the first's) rank among `pages` by MaxSim score for `query`, 1 = best;
    a tie counts against it."""
    scores = [float((query @ page.T).max(axis=1).sum()) for page in pages]
    return 1 + sum(score >= scores[0] for score in scores[1:])


def _embed_timed(
    embed: Callable[[Sequence[T]], list[np.ndarray]], item: T
) -> tuple[np.ndarray, float]:
    """One item's multi-vector, and the seconds its embedding took."""
    started = time.perf_counter()
    [vectors] = embed([item])
    return vectors, time.perf_counter() - started
