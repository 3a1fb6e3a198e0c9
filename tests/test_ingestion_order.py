"""Ingestion at real-model speed, on the real services: the embedder is slowed by a fixed time
per page (DOCDB_EMBEDDER_TEST_DELAY_MS) so that one round of the queue lasts far longer than
a hold (5 s here) and the sweeper's period (2 s). Documents finish in upload order, another
person's upload does not wait for a large import, nothing is resumed or embedded twice, and two
workers never work on the same document at once."""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.files.uploadedfile import SimpleUploadedFile

from docdb.documents.models import Document, PipelineRun, Status
from docdb.documents.services import document_upload
from tests.conftest import EmbedderInfo, Stack, worker_start
from tests.helpers import document_wait, user_make
from tests.pdf_factory import pdf_make

pytestmark = pytest.mark.timeout(900)

PAGE_DELAY_MS = 150
PAGES = 2


@pytest.fixture
def slow_embedder(live: Stack) -> Iterator[EmbedderInfo]:
    """The test embedder restarted with a delay per page, and back to full speed after."""
    service = live.embedder.service
    original = dict(service.env)
    service.stop()
    service.env = {**original, "DOCDB_EMBEDDER_TEST_DELAY_MS": str(PAGE_DELAY_MS)}
    service.start()
    try:
        yield live.embedder
    finally:
        service.stop()
        service.env = original
        service.start()


def _upload(owner: AbstractUser, directory: Path, name: str, *, pages: int = PAGES) -> Document:
    path = pdf_make(
        directory / f"{name}.pdf",
        pages=[[f"{name} page {n}", uuid.uuid4().hex] for n in range(1, pages + 1)],
    )
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
    return document_upload(owner=owner, upload=upload)  # type: ignore[arg-type]


def _counters(embedder: EmbedderInfo) -> dict[str, int]:
    counters = embedder.health()["counters"]
    assert isinstance(counters, dict)
    return {name: int(value) for name, value in counters.items()}


def _requests_per_page(embedder: EmbedderInfo, owner: AbstractUser, directory: Path) -> int:
    """How many images Weaviate asks the embedder for per page (one per named vector it
    vectorizes), measured on one document so that the batch can be checked for duplicates."""
    before = _counters(embedder)
    document = document_wait(_upload(owner, directory, "warm-up", pages=1).id, timeout=300)
    assert document.status == Status.READY, document.error
    embedded = _counters(embedder)["images_embedded"] - before["images_embedded"]
    assert embedded >= 1
    return embedded


def _ready_all(documents: list[Document], timeout: float = 600) -> list[Document]:
    return [document_wait(d.id, timeout=timeout) for d in documents]


def test_an_import_and_another_persons_upload_share_the_workers_fairly(
    live: Stack, slow_embedder: EmbedderInfo, tmp_path: Path
) -> None:
    importer, newcomer = user_make(), user_make()
    per_page = _requests_per_page(slow_embedder, importer, tmp_path)
    before = _counters(slow_embedder)

    imported = [_upload(importer, tmp_path, f"import-{n:02d}") for n in range(30)]
    theirs = _upload(newcomer, tmp_path, "newcomer")

    done = {d.id: d for d in _ready_all([*imported, theirs])}
    assert all(d.status == Status.READY for d in done.values()), [
        d.error for d in done.values() if d.status != Status.READY
    ]
    pages = 31 * PAGES
    after = _counters(slow_embedder)
    # Every page embedded exactly once: no range ran twice, none was resumed.
    assert after["images_computed"] - before["images_computed"] == pages
    assert after["images_embedded"] - before["images_embedded"] == pages * per_page
    ids = [d.id for d in [*imported, theirs]]
    assert sum(Document.objects.filter(id__in=ids).values_list("resume_count", flat=True)) == 0
    assert set(
        PipelineRun.objects.filter(document_id__in=ids).values_list("attempts", flat=True)
    ) == {1}
    # One person's documents finish in upload order.
    finished = [done[d.id].finished_at for d in imported]
    assert finished == sorted(finished)  # type: ignore[type-var]
    # The other person's upload went ahead of almost all of the import.
    third = done[imported[2].id].finished_at
    newcomer_done = done[theirs.id].finished_at
    assert newcomer_done is not None and third is not None and newcomer_done < third


def test_two_workers_work_on_different_documents_and_never_the_same_range(
    live: Stack, slow_embedder: EmbedderInfo, tmp_path: Path
) -> None:
    second = worker_start(live.worker_env, live.stack_dir, name="worker2")
    try:
        owners = [user_make(), user_make()]
        per_page = _requests_per_page(slow_embedder, owners[0], tmp_path)
        before = _counters(slow_embedder)
        documents = [_upload(owners[n % 2], tmp_path, f"parallel-{n}", pages=6) for n in range(6)]
        ids = [d.id for d in documents]
        holders_together: set[str] = set()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            rows = Document.objects.filter(id__in=ids)
            held = {d.holder.split("/")[0] for d in rows if d.holder}
            if len(held) > len(holders_together):
                holders_together = held
            if all(d.is_terminal for d in rows):
                break
            time.sleep(0.1)
        done = _ready_all(documents)
        assert all(d.status == Status.READY for d in done), [d.error for d in done]
        # Both workers held a document at the same moment.
        assert len(holders_together) == 2, holders_together
        after = _counters(slow_embedder)
        pages = 6 * 6
        assert after["images_computed"] - before["images_computed"] == pages
        assert after["images_embedded"] - before["images_embedded"] == pages * per_page
        assert not any(d.resume_count for d in done)
    finally:
        second.stop()
