"""Pipeline runs, the operations page and its repair button, against the real services."""

from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from docdb.documents.models import Status
from docdb.ops.health import redis_health, weaviate_health
from docdb.ops.models import PipelineRun, RunKind, RunState
from docdb.ops.reconcile import consistency_check
from docdb.weaviate_store import client_close, pages_count, pages_delete_numbers
from tests.conftest import Stack
from tests.helpers import document_wait, user_make
from tests.ops_helpers import (
    client_for,
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
    assert run.worker.startswith("celery@")
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


def test_operations_page_is_for_staff_only(db: None) -> None:
    url = reverse("ops:operations")
    assert Client().get(url).status_code == 302
    response = client_for(user_make()).get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_operations_page_shows_health_and_repairs_mismatches(live: Stack, tmp_path: Path) -> None:
    owner = user_make()
    document = document_ready(owner, tmp_path)
    pages_delete_numbers(document_id=document.id, numbers=[2])
    document.pages.get(number=3).thumbnail_path.unlink()
    staff = client_for(staff_make())

    page = staff.get(reverse("ops:operations")).content.decode()
    for service in ("Redis", "Weaviate", "Embedder", "Celery workers"):
        assert f'data-service="{service}"' in page
    assert page.count('class="ops-state ok"') == 4, page
    assert "1.39.0" in page  # Weaviate's version
    assert "random test model" in page and "celery@" in page
    assert "pages missing from Weaviate: 2" in page
    assert "thumbnails missing: 3" in page

    response = staff.post(reverse("ops:repair"))
    assert response.status_code == 302
    run = PipelineRun.objects.get(kind=RunKind.REPAIR)
    run = run_wait(run.id)
    assert run.state == RunState.SUCCEEDED, run.error
    assert consistency_check().consistent
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 3
    assert document.pages.get(number=3).thumbnail_path.is_file()
    page = staff.get(reverse("ops:operations")).content.decode()
    assert "Everything agrees." in page


def test_health_checks_say_what_is_down(live: Stack) -> None:
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:9/0"):
        redis = redis_health()
    assert not redis.ok and "127.0.0.1:9" in redis.error
    client_close()
    with override_settings(WEAVIATE_URL="http://127.0.0.1:9", WEAVIATE_GRPC_PORT=10):
        weaviate = weaviate_health()
        client_close()
    assert not weaviate.ok and "not reachable" in weaviate.error
