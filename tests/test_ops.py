"""Pipeline runs, the operations page and its repair button, against the real services."""

import hashlib
import time
import uuid
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from docdb.documents.models import Document, Page, PipelineRun, RunKind, RunState, Status
from docdb.documents.reimport import document_reimport_queue
from docdb.ops.health import redis_health, weaviate_health
from docdb.ops.models import ConsistencyCheck
from docdb.ops.reconcile import consistency_check, consistency_repair
from docdb.weaviate_store import (
    PageObject,
    client_close,
    inventory,
    pages_count,
    pages_delete_numbers,
    pages_library_set,
    pages_upsert,
)
from tests.conftest import LoggedIn, Stack
from tests.helpers import document_wait, user_make
from tests.ops_helpers import (
    document_add,
    document_ready,
    run_wait,
    small_pdf,
    staff_make,
)

pytestmark = pytest.mark.timeout(600)


def test_a_run_is_recorded_from_queued_to_succeeded(live: Stack, tmp_path: Path) -> None:
    live.worker.stop()
    document = document_add(user_make(), small_pdf(tmp_path))
    run = PipelineRun.objects.get(document=document)
    # Visible while nothing has taken it yet.
    assert (run.kind, run.state, run.started_at, run.attempts) == (
        RunKind.PROCESS,
        RunState.QUEUED,
        None,
        0,
    )
    live.worker_restart()

    document = document_wait(document.id)
    assert document.status == Status.READY, document.error
    run = run_wait(run.id)
    assert run.state == RunState.SUCCEEDED
    assert run.attempts == 1
    assert run.started_at and run.finished_at and run.started_at <= run.finished_at
    assert run.duration is not None
    assert run.worker.startswith("worker@")
    assert run.summary == "3 pages indexed."
    # One log line per step, saying which document, which task and how long.
    log = live.worker.log_path.read_text()
    steps = [line for line in log.splitlines() if str(document.id) in line and " step " in line]
    assert steps, log[-3000:]
    assert any(run.task_id in line and "succeeded in" in line for line in steps)


def test_a_failed_document_fails_its_run_with_the_reason(live: Stack, tmp_path: Path) -> None:
    locked = small_pdf(tmp_path, "locked.pdf", user_password="secret")
    document = document_wait(document_add(user_make(), locked).id)
    assert document.status == Status.FAILED
    run = run_wait(PipelineRun.objects.get(document=document).id)
    assert run.state == RunState.FAILED
    assert run.error == document.error
    assert "password" in run.error


def _check_wait(timeout: float = 120) -> ConsistencyCheck:
    deadline = time.monotonic() + timeout
    while (check := ConsistencyCheck.objects.first()) is None:
        assert time.monotonic() < deadline, "no consistency check was recorded"
        time.sleep(0.2)
    return check


def test_operations_page_is_for_staff_only(db: None, logged_in: LoggedIn) -> None:
    url = reverse("ops:operations")
    assert Client().get(url).status_code == 302
    response = logged_in(user_make()).get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_operations_page_shows_health_and_repairs_mismatches(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    document = document_ready(owner, tmp_path)
    pages_delete_numbers(document_id=document.id, numbers=[2])
    document.pages.get(number=3).thumbnail_path.unlink()
    # Page 1's object in a library the document is not in (a move that went wrong).
    pages_library_set(document_id=document.id, page_numbers=[1], library_id=0)
    staff = logged_in(staff_make())
    # The page shows the last check and never runs one: ask the worker for one, as a person
    # would with "Check now".
    assert "No check has run yet." in staff.get(reverse("ops:operations")).content.decode()
    assert staff.post(reverse("ops:check")).status_code == 302
    _check_wait()

    page = staff.get(reverse("ops:operations")).content.decode()
    assert "Checked " in page
    services = ("Redis", "Weaviate", "Embedder", "Celery workers", "File storage", "OCR")
    for service in services:
        assert f'data-service="{service}"' in page
    assert page.count('class="ops-state ok"') == len(services), page
    assert "Tesseract 5." in page
    assert "1.39.0" in page  # Weaviate's version
    assert "random test model" in page and "worker@" in page
    assert "pil on cpu" in page  # the embedder's image preprocessing
    # What the embedder's CPU computes natively, which its `auto` dtypes follow.
    cpu = live.embedder.health()["cpu"]
    assert cpu["capability"] in page and ("VNNI" in page) is cpu["vnni"]
    # Which weights it serves: the tiny model is built here, not downloaded from the hub.
    weights = (live.embedder.model_dir / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() in page and "not from the hub" in page
    assert "pages missing from Weaviate: 2" in page
    assert "thumbnails missing: 3" in page
    assert "pages in another library in Weaviate: 1" in page

    response = staff.post(reverse("ops:repair"))
    assert response.status_code == 302
    run = PipelineRun.objects.get(kind=RunKind.REPAIR)
    run = run_wait(run.id)
    assert run.state == RunState.SUCCEEDED, run.error
    assert consistency_check().consistent
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 3
    assert pages_count(document_id=document.id, library_id=document.library_id) == 3
    assert document.pages.get(number=3).thumbnail_path.is_file()
    page = staff.get(reverse("ops:operations")).content.decode()
    assert "Everything agrees." in page


def _objects_add(document_id: uuid.UUID, owner_id: int, numbers: list[int], image: bytes) -> None:
    pages_upsert(
        [
            PageObject(
                document_id=document_id,
                owner_id=owner_id,
                # A stray object's library: any (it belongs to no document row).
                library_id=0,
                title="stray",
                file_name="stray.pdf",
                page_number=number,
                text="",
                image_jpeg=image,
            )
            for number in numbers
        ]
    )


def test_consistency_check_finds_every_mismatch_without_walking_the_collection(
    live: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = user_make()
    damaged, unlisted, failed, pending = (
        document_ready(owner, tmp_path, f"{name}.pdf")
        for name in ("damaged", "unlisted", "failed", "pending")
    )
    image = damaged.pages.get(number=1).image_path.read_bytes()
    # An object missing, and one of a page the 3-page document does not have.
    pages_delete_numbers(document_id=damaged.id, numbers=[2])
    _objects_add(damaged.id, owner.pk, [5], image)
    # A page row lost: its object is one the database does not know.
    Page.objects.filter(document=unlisted, number=3).delete()
    # A failed document that kept its objects; one in the pipeline, whose objects are not orphans.
    Document.objects.filter(id=failed.id).update(status=Status.FAILED)
    Document.objects.filter(id=pending.id).update(
        status=Status.PROCESSING, holder="worker@elsewhere/task", heartbeat_at=timezone.now()
    )
    # Objects of a document the database never heard of.
    ghost = uuid.uuid4()
    _objects_add(ghost, owner.pk, [1, 2], image)

    def walk(*args: object) -> None:
        raise AssertionError("the inventory walked the whole collection")

    with monkeypatch.context() as patched:
        patched.setattr(inventory, "_inventory_walked", walk)
        report = consistency_check()
    checks = {check.document_id: check for check in report.documents}
    assert (report.checked, report.in_progress, set(checks)) == (
        4,
        1,
        {damaged.id, unlisted.id, failed.id},
    )
    assert (checks[damaged.id].missing_objects, checks[damaged.id].extra_objects) == ([2], [5])
    assert checks[damaged.id].objects_in_weaviate == 3
    assert (checks[unlisted.id].missing_rows, checks[unlisted.id].extra_objects) == ([3], [3])
    assert checks[failed.id].extra_objects == [1, 2, 3]
    assert report.orphans == {ghost: 2}
    assert [check.document_id for check in report.problems] == [damaged.id, unlisted.id, failed.id]

    # A document too large for one query is read by walking the collection: the same report.
    with monkeypatch.context() as patched:
        patched.setattr(inventory, "_QUERY_MAXIMUM_RESULTS", 2)
        walked = consistency_check()
    assert (walked.checked, walked.in_progress) == (report.checked, report.in_progress)
    assert (walked.documents, walked.orphans) == (report.documents, report.orphans)

    done, failures = consistency_repair(report)
    assert not failures, failures
    assert f"“damaged” ({damaged.id}): re-imported 1 pages into Weaviate" in done
    assert f"“damaged” ({damaged.id}): deleted 1 objects of pages that do not exist" in done
    assert f"“failed” ({failed.id}): removed 3 objects of a failed document" in done
    assert f"deleted 2 of 2 orphaned objects of document {ghost}" in done
    assert document_wait(unlisted.id).status == Status.READY
    after = consistency_check()
    assert after.consistent, [check.problems for check in after.problems]
    assert (after.checked, after.in_progress) == (4, 1)


def test_health_checks_say_what_is_down(live: Stack) -> None:
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:9/0"):
        redis = redis_health()
    assert not redis.ok and "127.0.0.1:9" in redis.error
    client_close()
    with override_settings(WEAVIATE_URL="http://127.0.0.1:9", WEAVIATE_GRPC_PORT=10):
        weaviate = weaviate_health()
        client_close()
    assert not weaviate.ok and "not reachable" in weaviate.error


def test_a_reimport_waits_out_a_weaviate_outage(live: Stack, tmp_path: Path) -> None:
    document = document_ready(user_make(), tmp_path)
    live.weaviate.service.stop()
    try:
        run = document_reimport_queue(document=document)
        assert run is not None
        deadline = time.monotonic() + 120
        while PipelineRun.objects.get(id=run.id).state != RunState.RETRYING:
            assert time.monotonic() < deadline, PipelineRun.objects.get(id=run.id).state
            time.sleep(0.2)
    finally:
        live.weaviate.service.start()
        client_close()
    run = run_wait(run.id)
    assert run.state == RunState.SUCCEEDED, run.error
    assert run.attempts >= 2
    assert pages_count(owner_id=document.owner_id, document_id=document.id) == 3
