"""Ingestion by stage: what each step of the pipeline costs per page, and its share of the total.

The stages run one after another in this process, with the pipeline's own functions and
settings (docdb.pdf, the embedder's model code, docdb.weaviate_store), so each is timed alone:
- rasterize: pdftoppm renders a range of pages to JPEG at the model's resolution, decoded;
- page text: pdftotext for the range;
- page image: the page encoded as the stored JPEG (also what goes to the embedder), written;
- thumbnail: resized and written;
- embedder decode: base64 and JPEG decoding, as the embedder receives a page;
- image preprocessing: resize, tiles, prompt (the model's image processor, PIL backend on CPU);
- model forward;
- Weaviate import: the page object with its multi-vector (client-side vectors, the shipped
  index configuration).
With the tiny model every page goes through every stage. The full-size model takes ~15-20 s a
page on two cores, so its preprocessing and forward are timed on a few pages and extrapolated
to the document; the other stages are the same as with the tiny model.
"""

import base64
import itertools
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.test import override_settings

from bench.common import Stopwatch
from bench.models import fullsize_model_build
from docdb import pdf
from docdb.embedder.model import Embedder, embedder_load
from docdb.embedder.protocol import image_decode
from docdb.embedder.testmodel import tiny_model_ensure
from docdb.weaviate_store import PageObject, client_close, collection_recreate, pages_upsert

PIPELINE_STAGES = ["rasterize", "page text", "page image", "thumbnail", "embedder decode"]
MODEL_STAGES = ["image preprocessing", "model forward"]
IMPORT_STAGE = "Weaviate import"
QUERIES = ["who owns culture", "copyright term extension", "the history of film piracy"]


def run(*, pdf_path: Path, pages: int, full_pages: int, models_dir: Path) -> dict[str, Any]:
    info = pdf.pdf_inspect(pdf_path, max_pages=settings.PDF_MAX_PAGES, timeout=60)
    pages = min(pages, info.pages)
    common = Stopwatch()
    jpegs = _pipeline_stages(pdf_path, pages, common)
    result: dict[str, Any] = {
        "pdf": pdf_path.name,
        "pages": pages,
        "longest_edge": settings.RENDER_LONGEST_EDGE,
        "page_jpeg_kib": statistics.mean(len(jpeg) for jpeg in jpegs) / 1024,
        "models": {},
    }
    per_page = {stage: seconds / pages for stage, seconds in common.seconds.items()}
    models = {"tiny": (tiny_model_ensure(models_dir), pages)}
    if full_pages > 0:
        models["full-size"] = (_fullsize_dir(models_dir), min(full_pages, pages))
    for name, (model_dir, measured) in models.items():
        embedder = embedder_load(str(model_dir), device="cpu")
        # Pages spread over the document: its first pages (a cover, a square page) are not
        # typical of the rest.
        step = len(jpegs) / measured
        model = _model_stages(embedder, [jpegs[int(index * step)] for index in range(measured)])
        vectors = model.pop("vectors")
        model_per_page = {stage: model.pop(stage) for stage in MODEL_STAGES}
        import_per_page = _import_stage(vectors, pages)
        stages = {**per_page, **model_per_page, IMPORT_STAGE: import_per_page}
        total = sum(stages.values())
        result["models"][name] = {
            "pages_measured_through_model": measured,
            "extrapolated": measured < pages,
            "s_per_page": stages,
            "share": {stage: seconds / total for stage, seconds in stages.items()},
            "total_s_per_page": total,
            "pages_per_s": 1 / total,
            "non_model_share": 1 - stages["model forward"] / total,
            **model,
        }
        del embedder
    return result


def _fullsize_dir(models_dir: Path) -> Path:
    path = models_dir / "fullsize-random"
    if not (path / "config.json").exists():
        print("building the full-size model with random weights (once; about a minute)")
        staging = Path(tempfile.mkdtemp(prefix=".fullsize-", dir=models_dir))
        fullsize_model_build(staging)
        staging.rename(path)
    return path


def _pipeline_stages(pdf_path: Path, pages: int, watch: Stopwatch) -> list[bytes]:
    """Render, read and store pages range by range as the worker does; the page JPEGs."""
    chunk = settings.RENDER_PAGES_PER_CHUNK
    timeout = settings.RENDER_TIMEOUT_SECONDS * chunk
    jpegs = []
    with tempfile.TemporaryDirectory(prefix="docdb-bench-pages-") as folder:
        for first in range(1, pages + 1, chunk):
            last = min(first + chunk - 1, pages)
            with watch.stage("rasterize"):
                rendered = pdf.pages_render(
                    pdf_path,
                    first=first,
                    last=last,
                    longest_edge=settings.RENDER_LONGEST_EDGE,
                    max_pixels=settings.RENDER_MAX_PIXELS,
                    timeout=timeout,
                )
            with watch.stage("page text"):
                pdf.pages_text(pdf_path, first=first, last=last, timeout=timeout)
            for page in rendered:
                with watch.stage("page image"):
                    jpeg = pdf.image_jpeg_bytes(page.image, quality=settings.PAGE_JPEG_QUALITY)
                    pdf.file_write_atomic(Path(folder, f"{page.number}.jpg"), jpeg)
                with watch.stage("thumbnail"):
                    thumbnail = pdf.thumbnail_make(page.image, width=settings.THUMBNAIL_WIDTH)
                    thumbnail_path = Path(folder, f"{page.number}-thumbnail.jpg")
                    pdf.image_write_jpeg(thumbnail, thumbnail_path, quality=80)
                jpegs.append(jpeg)
    for jpeg in jpegs:
        with watch.stage("embedder decode"):
            image_decode(base64.b64encode(jpeg).decode("ascii"), 0)
    return jpegs


def _model_stages(embedder: Embedder, jpegs: list[bytes]) -> dict[str, Any]:
    """Seconds per page to prepare and to embed `jpegs`, in batches as the embedder runs them."""
    images = [image_decode(base64.b64encode(jpeg).decode("ascii"), 0) for jpeg in jpegs]
    embedder.forward([embedder.image_prepare(images[0])])  # warm-up
    started = time.perf_counter()
    features = [embedder.image_prepare(image) for image in images]
    prepared = time.perf_counter()
    vectors: list[np.ndarray] = []
    batch = 8  # the embedder's batch on a CPU
    for start in range(0, len(features), batch):
        vectors += embedder.forward(features[start : start + batch])
    finished = time.perf_counter()
    query_seconds = []
    for text in QUERIES:
        began = time.perf_counter()
        embedder.embed_queries([text])
        query_seconds.append(time.perf_counter() - began)
    return {
        "image preprocessing": (prepared - started) / len(images),
        "model forward": (finished - prepared) / len(images),
        "vectors": vectors,
        "vectors_per_page": statistics.mean(len(page) for page in vectors),
        "query_embedding_s": statistics.median(query_seconds),
        "dtype": str(embedder.model.dtype).removeprefix("torch."),
    }


def _import_stage(vectors: list[np.ndarray], pages: int) -> float:
    """Seconds per page to import `pages` pages with these multi-vectors (cycled), in ranges."""
    owner = 1
    document = uuid.uuid4()
    cycle = itertools.cycle(vectors)
    objects = [
        PageObject(
            document_id=document,
            owner_id=owner,
            library_id=owner,
            title="Free Culture",
            file_name="freeculture.pdf",
            page_number=number,
            text="",
            image_jpeg=b"",
            vectors=next(cycle).tolist(),
        )
        for number in range(1, pages + 1)
    ]
    chunk = settings.RENDER_PAGES_PER_CHUNK
    with override_settings(VECTORIZE="client", WEAVIATE_COLLECTION="BenchIngest"):
        client_close()
        collection_recreate()
        started = time.perf_counter()
        for start in range(0, pages, chunk):
            pages_upsert(objects[start : start + chunk])
        seconds = time.perf_counter() - started
    client_close()
    return seconds / pages
