"""The admin: lists, change pages, staff-only images and every action, on the real services."""

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from docdb.documents.libraries import library_ids_visible
from docdb.documents.models import Document, PipelineRun, RunKind, RunState, Status
from docdb.weaviate_store import (
    SearchMode,
    collection_describe,
    page_multivector,
    pages_count,
    pages_delete_numbers,
    pages_search,
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

# Views over the same ORM queries the PostgreSQL pass tests: the SQLite pass runs them.
pytestmark = [pytest.mark.timeout(600), pytest.mark.sqlite_pass]

CHANGELIST = reverse("admin:documents_document_changelist")


def _action(client: Client, action: str, *documents: Document, **extra: str) -> str:
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(d.id) for d in documents], **extra},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_lists_change_pages_and_images(live: Stack, tmp_path: Path, logged_in: LoggedIn) -> None:
    owner = user_make()
    ready = document_ready(owner, tmp_path, "annual report.pdf")
    locked = small_pdf(tmp_path, "locked.pdf", pages=1, user_password="secret")
    failed = document_wait(document_add(owner, locked).id)
    assert failed.status == Status.FAILED
    staff = logged_in(staff_make())

    page = staff.get(CHANGELIST).content.decode()
    thumbnail = reverse("admin:documents_document_thumbnail", args=[ready.id, 1])
    assert thumbnail in page
    for text in ("annual report", owner.username, "Ready", "Failed", "locked"):
        assert text in page
    assert ready.id.hex[:8] not in staff.get(CHANGELIST + "?status__exact=failed").content.decode()
    by_checksum = staff.get(CHANGELIST + f"?q={ready.sha256[:16]}").content.decode()
    assert "annual report" in by_checksum and "locked" not in by_checksum
    assert "locked" in staff.get(CHANGELIST + "?q=locked.pdf").content.decode()
    assert (
        "1 document"
        in staff.get(
            CHANGELIST + f"?owner__id__exact={owner.pk}&status__exact=ready"
        ).content.decode()
    )

    image = staff.get(thumbnail)
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert b"".join(image.streaming_content).startswith(b"\xff\xd8")  # type: ignore[attr-defined]
    # The owner is not staff: the admin's images are not theirs to fetch here.
    assert logged_in(owner).get(thumbnail).status_code == 302
    assert Client().get(thumbnail).status_code == 302
    original = staff.get(reverse("admin:documents_document_original", args=[ready.id]))
    assert original["Content-Type"] == "application/pdf"

    change = staff.get(reverse("admin:documents_document_change", args=[failed.id]))
    body = change.content.decode()
    assert failed.error in body.replace("&#x27;", "'")  # the failure reason in full
    assert 'value="retry_failed"' in body and 'value="reimport_weaviate"' not in body
    change = staff.get(reverse("admin:documents_document_change", args=[ready.id])).content.decode()
    for number in (1, 2, 3):
        assert reverse("admin:documents_document_thumbnail", args=[ready.id, number]) in change
    run = PipelineRun.objects.get(document=ready)
    assert run.task_id in change  # its pipeline runs, inline
    assert 'value="reimport_weaviate"' in change and 'value="rerun_pipeline"' in change
    # What the workers spent, as a time, not as the raw float it is stored as.
    Document.objects.filter(id=ready.id).update(work_seconds=192.373508644001049)
    change = staff.get(reverse("admin:documents_document_change", args=[ready.id])).content.decode()
    assert "3 min 12 s" in change and "192.37" not in change

    pages = staff.get(reverse("admin:documents_page_changelist") + "?indexed=yes").content.decode()
    assert pages.count('class="docdb-thumb"') == 3
    assert staff.get(reverse("admin:documents_page_changelist") + "?indexed=no").status_code == 200
    # Where each page's text came from, and a filter by it.
    assert "Text layer" in pages
    by_ocr = staff.get(reverse("admin:documents_page_changelist") + "?text_source__exact=ocr")
    assert by_ocr.content.decode().count('class="docdb-thumb"') == 0
    runs = staff.get(reverse("admin:documents_pipelinerun_changelist")).content.decode()
    assert run.task_id in runs and "Succeeded" in runs and "Failed" in runs
    run_page = staff.get(
        reverse("admin:documents_pipelinerun_change", args=[run.id])
    ).content.decode()
    assert "3 pages indexed." in run_page
    assert staff.get(reverse("admin:documents_document_add")).status_code == 403


def test_rerun_pipeline_and_retry_failed(live: Stack, tmp_path: Path, logged_in: LoggedIn) -> None:
    owner = user_make()
    ready = document_ready(owner, tmp_path)
    broken = document_ready(owner, tmp_path, "broken.pdf")
    # A failure whose cause is gone (the worker ran out of memory once); only a ready document
    # can fail this way, so the state is set directly.
    Document.objects.filter(id=broken.id).update(
        status=Status.FAILED, error="The worker ran out of memory."
    )
    staff = logged_in(staff_make())

    message = _action(staff, "retry_failed", ready, broken)
    assert "1 of 2 documents queued again. 1 skipped (not failed)." in message
    assert document_wait(broken.id).status == Status.READY

    message = _action(staff, "rerun_pipeline", ready)
    assert "1 of 1 document queued to run again." in message
    assert document_wait(ready.id).status == Status.READY
    runs = PipelineRun.objects.filter(document=ready, kind=RunKind.PROCESS)
    assert runs.count() == 2
    assert all(run_wait(run.id).state == RunState.SUCCEEDED for run in runs)
    assert pages_count(owner_id=owner.pk, document_id=ready.id) == 3


def test_reimport_into_weaviate_only(live: Stack, tmp_path: Path, logged_in: LoggedIn) -> None:
    owner = user_make()
    document = document_ready(owner, tmp_path)
    images = {page.number: page.image_path.stat().st_mtime_ns for page in document.pages.all()}
    pages_delete_numbers(document_id=document.id, numbers=[1, 3])
    staff = logged_in(staff_make())

    message = _action(staff, "reimport_weaviate", document)
    assert "1 of 1 document queued for re-import." in message
    run = run_wait(PipelineRun.objects.get(document=document, kind=RunKind.REIMPORT).id)
    assert run.state == RunState.SUCCEEDED and run.summary == "3 pages re-imported."
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 3
    # Nothing was rendered again.
    assert {p.number: p.image_path.stat().st_mtime_ns for p in document.pages.all()} == images


def _change_form(client: Client, document: Document) -> dict[str, object]:
    """What the change page posts back as it stands: its fields and its inlines' forms."""
    page = client.get(reverse("admin:documents_document_change", args=[document.id]))
    data: dict[str, object] = {"title": document.title}
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        for form in [formset.management_form, *formset.forms]:
            data |= {form.add_prefix(name): form[name].value() for name in form.fields}
    return {name: value for name, value in data.items() if value is not None}


def test_title_change_renames_without_reembedding(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    document = document_ready(owner, tmp_path)
    vectors = page_multivector(
        library_ids=library_ids_visible(user=owner), document_id=document.id, page_number=1
    )
    embedded = live.embedder.health()["counters"]["images_embedded"]  # type: ignore[index]
    staff = logged_in(staff_make())

    form = _change_form(staff, document) | {"title": "Zeppelin manual"}
    response = staff.post(reverse("admin:documents_document_change", args=[document.id]), form)
    assert response.status_code == 302, response.content
    assert Document.objects.get(id=document.id).title == "Zeppelin manual"
    hits = pages_search(
        library_ids=library_ids_visible(user=owner),
        query="zeppelin",
        mode=SearchMode.KEYWORD,
        limit=10,
    )
    assert len(hits) == 3
    # Nothing queued and nothing embedded: only the title moved, in place.
    assert not PipelineRun.objects.filter(document=document, kind=RunKind.REIMPORT).exists()
    assert live.embedder.health()["counters"]["images_embedded"] == embedded  # type: ignore[index]
    assert (
        page_multivector(
            library_ids=library_ids_visible(user=owner), document_id=document.id, page_number=1
        )
        == vectors
    )


def test_delete_removes_files_rows_and_objects(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    document = document_ready(owner, tmp_path)
    kept = document_ready(owner, tmp_path, "kept.pdf")
    directory = document.directory
    staff = logged_in(staff_make())

    confirm = _action(staff, "delete_selected", document)
    assert "Are you sure" in confirm
    message = _action(staff, "delete_selected", document, post="yes")
    assert "Successfully deleted 1 document" in message
    assert not Document.objects.filter(id=document.id).exists()
    assert not directory.exists()
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 0
    assert pages_count(owner_id=owner.pk, document_id=kept.id) == 3
    # The run stays as history, without its document.
    assert PipelineRun.objects.filter(document__isnull=True, kind=RunKind.PROCESS).count() == 1

    response = staff.post(
        reverse("admin:documents_document_delete", args=[kept.id]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert pages_count(owner_id=owner.pk, document_id=kept.id) == 0
    assert not kept.directory.exists()


def test_recreate_collection_and_reimport_everything(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    first = document_ready(owner, tmp_path, "first.pdf")
    second = document_ready(owner, tmp_path, "second.pdf")
    url = reverse("admin:documents_document_recreate_index")
    staff = logged_in(staff_make())
    assert logged_in(owner).get(url).status_code == 302  # staff only

    page = staff.get(url).content.decode()
    assert "DocDBPage" in page and "6 objects" in page and "2 ready documents" in page
    wrong = staff.post(url, {"confirm": "yes"}, follow=True).content.decode()
    assert "Nothing was changed" in wrong
    assert pages_count() == 6

    done = staff.post(url, {"confirm": "DocDBPage"}, follow=True)
    assert done.redirect_chain[-1][0] == reverse("ops:operations")
    assert "2 documents are queued for re-import" in done.content.decode()
    for document in (first, second):
        run = PipelineRun.objects.get(document=document, kind=RunKind.REIMPORT)
        assert run_wait(run.id).state == RunState.SUCCEEDED
    assert pages_count() == 6
    assert collection_describe()["exists"] is True


def test_api_tokens_are_revoked_not_added_in_the_admin(db: None, logged_in: LoggedIn) -> None:
    from docdb.api.models import ApiToken

    token, _raw = ApiToken.issue(user=user_make(), name="laptop")
    staff = logged_in(staff_make())
    url = reverse("admin:docdb_api_apitoken_changelist")
    assert "laptop" in staff.get(url).content.decode()
    assert staff.get(reverse("admin:docdb_api_apitoken_add")).status_code == 403
    response = staff.post(url, {"action": "revoke", "_selected_action": [token.pk]}, follow=True)
    assert "1 token(s) revoked." in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
