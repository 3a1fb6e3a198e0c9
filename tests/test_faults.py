"""Crashes and outages of real processes: every document still ends ready, with the database,
the disk and Weaviate in agreement (no page missing, none duplicated)."""

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from docdb.celery import app as celery_app
from docdb.documents import services
from docdb.documents.models import Document, Page, Status
from docdb.documents.services import document_upload
from docdb.documents.tasks import document_range_task, documents_sweep_task
from docdb.weaviate_store import client_close, pages_count
from tests.conftest import Stack
from tests.helpers import document_stored, document_wait, user_make
from tests.pdf_factory import pdf_make

pytestmark = pytest.mark.timeout(600)

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


def _wait_mid_document(document_id: uuid.UUID, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = Document.objects.get(id=document_id)
        if 0 < document.pages_done < document.pages_total:
            return
        assert document.status in (Status.QUEUED, Status.PROCESSING), document.error
        time.sleep(0.05)
    raise AssertionError("the document never got to the middle")


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


def test_worker_killed_mid_document_and_restarted(live: Stack, tmp_path: Path) -> None:
    document = _upload(user_make(), _long_pdf(tmp_path))
    _wait_mid_document(document.id)
    live.worker.kill()
    killed_at = Document.objects.get(id=document.id).pages_done
    assert killed_at < PAGES
    # The unacknowledged range comes back to the restarted worker (late acknowledgement).
    live.worker.start()
    _assert_consistent(document.id)


def _task_taken_and_lost() -> None:
    """What the broker sees of a worker that took the queued task and died before acknowledging
    it: the task goes back to the queue marked redelivered (at once when only the pool process
    died, after the visibility timeout when the whole worker did)."""
    with celery_app.connection_for_read() as connection:
        message = connection.default_channel.basic_get(settings.CELERY_TASK_DEFAULT_QUEUE)
        assert message is not None
        message.reject(requeue=True)


def test_worker_killed_after_its_range_and_before_queueing_the_next(
    live: Stack, tmp_path: Path
) -> None:
    """What test_worker_killed_mid_document_and_restarted meets by chance: the worker moved the
    page cursor past its range, then died before it queued the next range. Only its own
    unacknowledged task is left, and when it comes back it must queue the next range, or
    nothing ever will."""
    live.worker.stop()
    chunk = settings.RENDER_PAGES_PER_CHUNK
    pages = chunk + 3
    document = document_stored(user_make(), _long_pdf(tmp_path, pages=pages))
    assert services.document_start(document_id=document.id) == 1
    # The first range is done and the cursor moved; what it returned is never queued.
    assert services.document_range_ingest(document_id=document.id, first=1) == chunk + 1
    # A second run that is no redelivery (the sweeper's, say) queues nothing: no chain forks.
    assert services.document_range_ingest(document_id=document.id, first=1) is None
    document_range_task.delay(str(document.id), 1)
    _task_taken_and_lost()
    live.worker.start()
    _assert_consistent(document.id, pages=pages)


def test_weaviate_stopped_during_import_then_back(live: Stack, tmp_path: Path) -> None:
    document = _upload(user_make(), _long_pdf(tmp_path))
    _wait_mid_document(document.id)
    live.weaviate.service.stop()
    time.sleep(3)  # the worker meets the outage and backs off
    live.weaviate.service.start()
    client_close()
    _assert_consistent(document.id)


def test_embedder_away_for_a_while(live: Stack, tmp_path: Path) -> None:
    live.embedder.service.stop()
    try:
        document = _upload(user_make(), _long_pdf(tmp_path))
        time.sleep(4)  # imports fail while it is away; the task retries with backoff
        assert Document.objects.get(id=document.id).status in (Status.QUEUED, Status.PROCESSING)
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


def test_sweeper_resumes_documents_whose_task_was_lost(live: Stack, tmp_path: Path) -> None:
    live.worker.stop()
    owner = user_make()
    queued = _upload(owner, _long_pdf(tmp_path, "lost.pdf"))
    # The queue is lost (say Redis ran without persistence and restarted): nothing will come.
    redis.Redis.from_url(live.redis.url).flushdb()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Document.objects.filter(id=queued.id).update(updated_at=an_hour_ago)
    live.worker.start()
    with override_settings(PIPELINE_STALL_SECONDS=600):
        assert documents_sweep_task() == 1
    _assert_consistent(queued.id)


def test_sweeper_fails_a_document_that_keeps_stalling(live: Stack, tmp_path: Path) -> None:
    live.worker.stop()
    try:
        document = _upload(user_make(), _long_pdf(tmp_path, "stalls.pdf"))
        Document.objects.filter(id=document.id).update(
            status=Status.PROCESSING,
            resume_count=3,
            updated_at=timezone.now() - timedelta(hours=1),
        )
        with override_settings(PIPELINE_STALL_SECONDS=600, PIPELINE_MAX_RESUMES=3):
            assert documents_sweep_task() == 0
        document.refresh_from_db()
        assert document.status == Status.FAILED
        assert "stopped 3 times without finishing" in document.error
    finally:
        redis.Redis.from_url(live.redis.url).flushdb()
        live.worker.start()
