"""Several embedders for DocDB's own calls (client-side vectors): the batches of pages are spread
over them, and when one is killed in the middle of a document its batch goes to the other and no
page is lost. Two real embedder processes with the test model (the same weights, so the same
vectors)."""

import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.test import override_settings
from PIL import Image, ImageDraw

from docdb.documents.models import Document, Status
from docdb.documents.services import document_ingest
from docdb.embedder_client import images_embed
from docdb.localstack import free_port
from docdb.weaviate_store import client_get, collection_ensure, pages_count
from tests.conftest import Service, Stack, http_ok, service_start, wait_until
from tests.helpers import document_stored, user_make
from tests.pdf_factory import pdf_make

pytestmark = pytest.mark.sqlite_pass

COLLECTION = "DocDBReplicaPage"
PAGES = 8


def _images_embedded(url: str) -> int:
    counters = requests.get(f"{url}/health", timeout=5).json()["counters"]
    return int(counters["images_embedded"])


@pytest.fixture
def second_embedder(live: Stack) -> Iterator[tuple[str, Service]]:
    """Another embedder beside the stack's, slowed per page so that it is killed mid-batch."""
    port = free_port()
    env = {
        **live.embedder.service.env,
        "DOCDB_EMBEDDER_PORT": str(port),
        "DOCDB_EMBEDDER_TEST_DELAY_MS": "400",
    }
    service = service_start(
        "embedder-2", [sys.executable, "-m", "docdb.embedder"], log_dir=live.stack_dir, env=env
    )
    url = f"http://127.0.0.1:{port}"
    service.ready = lambda: http_ok(f"{url}/health")
    wait_until(service, service.ready, timeout=120)
    yield url, service
    if service.process.poll() is None:
        service.stop()


def test_batches_spread_over_embedders_and_survive_one_killed(
    live: Stack, second_embedder: tuple[str, Service], tmp_path: Path
) -> None:
    first = live.embedder.url
    second, service = second_embedder
    with override_settings(
        VECTORIZE="client",
        WEAVIATE_COLLECTION=COLLECTION,
        EMBEDDER_URLS=[first, second],
        EMBEDDER_CLIENT_BATCH_SIZE=1,
        WEAVIATE_IMPORT_BATCH_SIZE=PAGES,
    ):
        collection_ensure()
        try:
            # Spread: four page batches, two on each embedder.
            before = (_images_embedded(first), _images_embedded(second))
            vectors = images_embed([_jpeg()] * 4)
            assert len(vectors) == 4
            after = (_images_embedded(first), _images_embedded(second))
            assert after[0] > before[0] and after[1] > before[1], (before, after)

            owner = user_make()
            path = pdf_make(
                tmp_path / "replicas.pdf",
                pages=[[f"Replica page {n}", f"unique{n}word"] for n in range(1, PAGES + 1)],
            )
            document = document_stored(owner, path)
            killed = threading.Event()

            def kill_once_busy() -> None:
                start = _images_embedded(second)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and _images_embedded(second) == start:
                    time.sleep(0.05)
                os.killpg(service.process.pid, signal.SIGKILL)
                killed.set()

            killer = threading.Thread(target=kill_once_busy, daemon=True)
            killer.start()
            document_ingest(document_id=document.id)
            killer.join(timeout=130)
            assert killed.is_set(), "the second embedder never got a page"
            document = Document.objects.get(id=document.id)
            assert document.status == Status.READY, document.error
            assert document.pages.count() == PAGES
            assert pages_count(owner_id=owner.pk, document_id=document.id) == PAGES
        finally:
            client_get().collections.delete(COLLECTION)


def _jpeg() -> bytes:
    image = Image.new("RGB", (600, 800), "white")
    ImageDraw.Draw(image).text((40, 40), "A page for two embedders", fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()
