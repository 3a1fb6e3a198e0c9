"""Crashes and outages of real processes: every document still ends ready, with the database,
the disk and Weaviate in agreement (no page missing, none duplicated)."""

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from docdb.celery import app as celery_app
from docdb.documents import scheduler
from docdb.documents.models import Document, Page, Status
from docdb.documents.services import document_upload
from docdb.documents.tasks import pipeline_sweep_task
from docdb.weaviate_store import client_close, pages_count
from tests.conftest import Stack, wait_until
from tests.helpers import document_wait, user_make
from tests.pdf_factory import pdf_make

pytestmark = [pytest.mark.sqlite_pass, pytest.mark.timeout(600)]

PAGES = 48


def _long_pdf(directory: Path, name: str = "long.pdf", *, pages: int = PAGES) -> Path:
    return pdf_make(
        directory / name,
        pages=[[f"Page {n} of the long report", f"token-{uuid.uuid4().hex}"] for n in range(pages)],
    )


def _upload(owner: object, path: Path) -> Document:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
    return document_upload(owner=owner, upload=upload)  # type: ignore[arg-type]


def _wait_for(document_id: uuid.UUID, what: str, ok: Callable[[Document], bool]) -> None:
    """Poll the document until `ok` says it reached the state the test waits for."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        document = Document.objects.get(id=document_id)
        if ok(document):
            return
        assert document.status in (Status.QUEUED, Status.PROCESSING), document.error
        time.sleep(0.05)
    raise AssertionError(f"the document never got to {what}")


def _wait_mid_document(document_id: uuid.UUID) -> None:
    """Until a worker holds the document in the middle of its pages."""
    _wait_for(
        document_id,
        "the middle",
        lambda d: (
            0 < d.pages_done < d.pages_total - settings.RENDER_PAGES_PER_CHUNK and bool(d.holder)
        ),
    )


def _wait_backing_off(document_id: uuid.UUID) -> None:
    """Until a turn met the outage and the document waits to try again."""
    _wait_for(document_id, "a retry", lambda d: d.retries > 0)


def _assert_consistent(document_id: uuid.UUID, pages: int = PAGES) -> None:
    document = document_wait(document_id, timeout=300)
    assert document.status == Status.READY, document.error
    assert document.pages_done == document.pages_total == pages
    numbers = list(
        Page.objects.filter(document=document).order_by("number").values_list("number", flat=True)
    )
    assert numbers == list(range(1, pages + 1))
    assert not Page.objects.filter(document=document, indexed_at__isnull=True).exists()
    for page in Page.objects.filter(document=document):
        assert page.image_path.is_file() and page.thumbnail_path.is_file()
    assert pages_count(owner_id=document.owner_id, document_id=document.id) == pages


def test_worker_killed_during_a_turn_is_taken_over_without_waiting_for_the_broker(
    live: Stack, tmp_path: Path
) -> None:
    """The broker hands a dead worker's message out again only after its visibility timeout
    (30 minutes in production); the document does not wait that long. Its hold stops being
    refreshed, and once it is older than DOCDB_PIPELINE_HOLD_SECONDS the sweeper's token
    takes the document over, at the page cursor."""
    document = _upload(user_make(), _long_pdf(tmp_path))
    _wait_mid_document(document.id)
    live.worker.kill()
    # The dead worker's message stays unacknowledged in Redis; only the hold can free it.
    live.worker.start()
    wait_until(live.worker, lambda: bool(celery_app.control.ping(timeout=1)), timeout=60)
    taken_over = time.monotonic()
    _wait_for(document.id, "a new holder", lambda d: d.resume_count == 1)
    # Hold (5 s) + sweeper (every 2 s) + a turn starting, well below the visibility timeout.
    assert time.monotonic() - taken_over < 20, "the document waited for the broker"
    _assert_consistent(document.id)
    document = Document.objects.get(id=document.id)
    assert document.resume_count == 1


def test_weaviate_stopped_during_import_then_back(live: Stack, tmp_path: Path) -> None:
    document = _upload(user_make(), _long_pdf(tmp_path))
    _wait_mid_document(document.id)
    live.weaviate.service.stop()
    _wait_backing_off(document.id)
    live.weaviate.service.start()
    client_close()
    _assert_consistent(document.id)


def test_embedder_away_for_a_while(live: Stack, tmp_path: Path) -> None:
    live.embedder.service.stop()
    try:
        document = _upload(user_make(), _long_pdf(tmp_path))
        _wait_backing_off(document.id)
    finally:
        live.embedder.service.start()
    _assert_consistent(document.id)


def test_redis_restart_keeps_queued_tasks(live: Stack, tmp_path: Path) -> None:
    live.worker.stop()
    owner = user_make()
    documents = [_upload(owner, _long_pdf(tmp_path, f"queued-{n}.pdf")) for n in range(2)]
    live.redis.service.stop()  # SIGTERM: Redis writes its append-only file and exits
    live.redis.service.start()
    live.worker.start()
    for document in documents:
        _assert_consistent(document.id)


def test_a_flushed_queue_is_recovered_by_the_sweeper(live: Stack, tmp_path: Path) -> None:
    live.worker.stop()
    owner = user_make()
    queued = [_upload(owner, _long_pdf(tmp_path, f"lost-{n}.pdf", pages=3)) for n in range(2)]
    # The queue is lost (say Redis ran without persistence and restarted): no token is left.
    redis.Redis.from_url(live.redis.url).flushdb()
    assert pipeline_sweep_task() == 2
    live.worker.start()
    for document in queued:
        _assert_consistent(document.id, pages=3)
        assert Document.objects.get(id=document.id).resume_count == 0


def test_a_document_whose_worker_keeps_dying_fails_with_the_reason(
    live: Stack, tmp_path: Path
) -> None:
    live.worker.stop()
    try:
        document = _upload(user_make(), _long_pdf(tmp_path, "kills-workers.pdf"))
        stale = timezone.now() - timedelta(hours=1)
        Document.objects.filter(id=document.id).update(
            status=Status.PROCESSING,
            started_at=stale,
            resume_count=settings.PIPELINE_MAX_RESUMES,
            holder="worker@gone/task",
            heartbeat_at=stale,
        )
        assert scheduler.turn_claim(holder="test/claim") is None
        document.refresh_from_db()
        assert document.status == Status.FAILED
        assert f"stopped {settings.PIPELINE_MAX_RESUMES + 1} times" in document.error
        assert not document.holder
    finally:
        live.worker.start()
