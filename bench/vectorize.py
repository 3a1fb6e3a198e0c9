"""Server-side vs client-side vectors: pages per second of the whole pipeline in each mode.

- server: Weaviate's multi2multivec-weaviate module sends the page images to the embedder,
  two per request (DOCDB_VECTORIZE=server);
- client: the pipeline sends them to the embedder itself, all pages of a range per request,
  and imports self-provided multi-vectors (DOCDB_VECTORIZE=client);
each with plain multi-vector HNSW and with MUVERA, and server-side once more with a larger
import batch (Weaviate then keeps more requests in flight). `document_ingest` runs the real
pipeline in this process against the embedder service (tiny model, CPU) and a dedicated
Weaviate. A second measurement leaves rendering out: the same page JPEGs, embedded and imported
only, 8 pages per call in server mode (a range) and 32 in client mode and with the larger batch.
Each figure is the best of two runs.
"""

import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.test import override_settings

from bench.results import mode_name
from docdb import pdf
from docdb.documents.models import Document, Status
from docdb.documents.services import document_ingest
from docdb.weaviate_store import (
    PageObject,
    client_close,
    collection_recreate,
    pages_count,
    pages_upsert,
)

MODES = [("server", False), ("server", True), ("client", False), ("client", True)]
# Weaviate splits an import batch into requests of 2 images and sends them in parallel: a
# larger batch keeps more requests in flight, which the embedder merges into its own batches.
WIDE_IMPORT_BATCH = 32
REPEATS = 2


def default_mode() -> tuple[str, bool]:
    """The mode DocDB's settings choose."""
    return settings.VECTORIZE, settings.WEAVIATE_MUVERA


def mode_settings(vectorize: str, muvera: bool) -> dict[str, Any]:
    collection = f"Bench{vectorize.title()}{'Muvera' if muvera else 'Plain'}"
    return {"VECTORIZE": vectorize, "WEAVIATE_MUVERA": muvera, "WEAVIATE_COLLECTION": collection}


def run(*, pdf_path: Path, pages: int, owner: str = "bench") -> dict[str, Any]:
    user, _ = get_user_model().objects.get_or_create(username=owner)
    with tempfile.TemporaryDirectory(prefix="docdb-bench-pdf-") as folder:
        sample = _first_pages(pdf_path, pages, Path(folder))
        jpegs = _render(sample, pages)
        runs = []
        modes = [(vectorize, muvera, None) for vectorize, muvera in MODES]
        modes.append(("server", True, WIDE_IMPORT_BATCH))
        for vectorize, muvera, import_batch in modes:
            overrides = mode_settings(vectorize, muvera)
            if import_batch:
                overrides["WEAVIATE_IMPORT_BATCH_SIZE"] = import_batch
            with override_settings(**overrides):
                client_close()
                collection_recreate()
                per_call = 8 if vectorize == "server" and not import_batch else 32
                # Best of a few runs: other work on a shared machine only ever slows one down.
                pipeline = max(
                    (_pipeline(sample, user, pages) for _ in range(REPEATS)),
                    key=lambda run: run["pipeline_pages_per_s"],
                )
                embed_only = max(
                    (_embed_and_import(jpegs, user.pk, per_call=per_call) for _ in range(REPEATS)),
                    key=lambda run: run["embed_import_pages_per_s"],
                )
                name = mode_name(vectorize, muvera, import_batch)
                runs.append(
                    {
                        "mode": name,
                        "import_batch": settings.WEAVIATE_IMPORT_BATCH_SIZE,
                        **pipeline,
                        **embed_only,
                    }
                )
                print(
                    f"{runs[-1]['mode']}: pipeline {pipeline['pipeline_pages_per_s']:.2f} "
                    f"pages/s, embed+import {embed_only['embed_import_pages_per_s']:.2f} pages/s"
                )
        client_close()
    return {"pages": pages, "pdf": pdf_path.name, "runs": runs}


def _first_pages(pdf_path: Path, pages: int, folder: Path) -> Path:
    """A PDF of the document's first `pages` pages (poppler's pdfseparate and pdfunite)."""
    subprocess.run(
        ["pdfseparate", "-f", "1", "-l", str(pages), str(pdf_path), str(folder / "p-%d.pdf")],
        check=True,
    )
    parts = [str(folder / f"p-{number}.pdf") for number in range(1, pages + 1)]
    sample = folder / "sample.pdf"
    subprocess.run(["pdfunite", *parts, str(sample)], check=True)
    return sample


def _render(sample: Path, pages: int) -> list[bytes]:
    rendered = pdf.pages_render(
        sample,
        first=1,
        last=pages,
        longest_edge=settings.RENDER_LONGEST_EDGE,
        max_pixels=settings.RENDER_MAX_PIXELS,
        timeout=settings.RENDER_TIMEOUT_SECONDS * pages,
    )
    quality = settings.PAGE_JPEG_QUALITY
    return [pdf.image_jpeg_bytes(page.image, quality=quality) for page in rendered]


def _pipeline(sample: Path, user: Any, pages: int) -> dict[str, Any]:
    # One document per owner and checksum (a database constraint): each run its own checksum.
    document = Document(
        owner=user, title="bench", original_name="bench.pdf", sha256=f"bench-{uuid.uuid4().hex}"
    )
    with sample.open("rb") as handle:
        document.file.save("original.pdf", File(handle), save=True)
    started = time.perf_counter()
    document_ingest(document_id=document.id)
    seconds = time.perf_counter() - started
    document.refresh_from_db()
    if document.status != Status.READY:
        raise RuntimeError(f"the document ended {document.status}: {document.error}")
    indexed = pages_count(owner_id=user.pk, document_id=document.id)
    if indexed != pages:
        raise RuntimeError(f"{indexed} of {pages} pages are in Weaviate")
    return {"pipeline_seconds": seconds, "pipeline_pages_per_s": pages / seconds}


def _embed_and_import(jpegs: list[bytes], owner_id: int, *, per_call: int) -> dict[str, Any]:
    document_id = uuid.uuid4()
    objects = [
        PageObject(
            document_id=document_id,
            owner_id=owner_id,
            library_id=owner_id,
            title="bench",
            file_name="bench.pdf",
            page_number=number,
            text="",
            image_jpeg=jpeg,
        )
        for number, jpeg in enumerate(jpegs, start=1)
    ]
    started = time.perf_counter()
    for start in range(0, len(objects), per_call):
        pages_upsert(objects[start : start + per_call])
    seconds = time.perf_counter() - started
    return {"embed_import_pages_per_s": len(objects) / seconds, "pages_per_call": per_call}
