"""Damaged, unreadable and protected PDFs through the real pipeline (worker, Weaviate,
embedder): made here, and, marked `corpus`, every hostile file of the shared corpus."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from docdb.documents.models import DamagedPage, Document, Page, PipelineRun, Status
from docdb.documents.services import UploadRejected, document_upload
from docdb.weaviate_store import pages_count
from tests.conftest import TEST_PDF_MAX_PAGES, LoggedIn, Stack
from tests.helpers import document_wait, user_make
from tests.ops_helpers import staff_make
from tests.pdf_factory import (
    pdf_make,
    pdf_make_junk_before_header,
    pdf_make_no_pages,
    pdf_make_troubled,
)

pytestmark = [pytest.mark.sqlite_pass, pytest.mark.timeout(900)]

# What a person is told, by file; files not listed must become ready.
REJECTED_AT_UPLOAD = {
    "zero-bytes.pdf": "the file is empty.",
    "22060_A1_01_Plans.pdf": "the file is empty.",
    "html-named-pdf.pdf": "this file is not a PDF.",
    "png-named-pdf.pdf": "this file is not a PDF.",
}
FAILED_WITH = {
    "issue3371.pdf": "This PDF is password-protected.",
    "truncated-tracemonkey.pdf": "The file is damaged and could not be read.",
    "many-pages.pdf": f"This PDF has 3000 pages; the limit is {TEST_PDF_MAX_PAGES}.",
}


@pytest.mark.corpus
def test_hostile_files_end_ready_or_failed_with_a_reason(live: Stack, corpus_dir: Path) -> None:
    owner = user_make()
    files = sorted((corpus_dir / "hostile").iterdir())
    assert len(files) >= 18
    documents: dict[str, Document] = {}
    for path in files:
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
        try:
            documents[path.name] = document_upload(owner=owner, upload=upload)
        except UploadRejected as exc:
            assert exc.reason.endswith(REJECTED_AT_UPLOAD[path.name]), exc.reason
        else:
            assert path.name not in REJECTED_AT_UPLOAD
            # The stored name is generated; the given one (hostile here) is only displayed.
            assert documents[path.name].file.name.endswith("/original.pdf")
            assert documents[path.name].original_name == path.name

    assert set(REJECTED_AT_UPLOAD) | set(documents) == {path.name for path in files}
    for name, document in documents.items():
        document = document_wait(document.id, timeout=600)
        indexed = pages_count(owner_id=owner.pk, document_id=document.id)
        if name in FAILED_WITH:
            assert document.status == Status.FAILED, name
            assert document.error == FAILED_WITH[name]
            assert indexed == 0, f"{name} left pages in Weaviate"
            continue
        assert document.status == Status.READY, f"{name}: {document.error}"
        assert document.pages_done == document.pages_total >= 1
        rendered = document.pages_total - DamagedPage.objects.filter(document=document).count()
        assert indexed == rendered == Page.objects.filter(document=document).count() >= 1
        for page in Page.objects.filter(document=document):
            assert page.image_path.is_file(), name
            assert page.width * page.height <= 2048 * 2048


def _upload(client: Client, path: Path) -> Document:
    with path.open("rb") as handle:
        response = client.post(reverse("documents:upload"), {"file": handle})
    assert response.status_code == 302
    return Document.objects.filter(original_name=path.name).latest("created_at")


def _api_get(client: Client, document: Document) -> dict:
    from tests.test_api import _api, _token_for

    api = _api(_token_for(document.owner.get_username()))
    response = api.get(f"/api/documents/{document.id}")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_a_damaged_page_leaves_the_document_ready_with_the_page_listed(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    client = logged_in(owner)
    # Page 1 no engine renders; page 3 poppler renders blank and PDFium draws.
    path = pdf_make_troubled(tmp_path / "troubled.pdf", pages=4, tiny=[1], font_missing=[3])

    document = document_wait(_upload(client, path).id)

    assert document.status == Status.READY, document.error
    assert (document.pages_total, document.pages_done, document.error) == (4, 4, "")
    assert list(document.pages.values_list("number", flat=True)) == [2, 3, 4]
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 3
    reason = "Page 1 is damaged and could not be rendered."
    assert list(DamagedPage.objects.filter(document=document).values_list("number", "reason")) == [
        (1, reason)
    ]
    # PDFium's page comes with PDFium's text, and keyword search finds it.
    assert document.pages.get(number=3).text == "Page 3 of the troubled file"
    found = client.get(reverse("search:search"), {"q": "troubled", "mode": "keyword"})
    assert {r.page.number for r in found.context["results"]} == {2, 3, 4}

    listing = client.get(reverse("documents:list")).content.decode()
    detail = client.get(reverse("documents:detail", args=[document.id])).content.decode()
    for html in (listing, detail):
        assert "4 pages · 1 damaged" in html
        assert f'<li data-damaged-page="1">{reason}</li>' in html
    # The list pictures the document by its first page that is not damaged.
    assert reverse("documents:page_thumbnail", args=[document.id, 2]) in listing
    assert reverse("documents:page_thumbnail", args=[document.id, 1]) not in listing
    api = _api_get(client, document)
    assert (api["status"], api["damaged_pages"], api["can_retry"]) == (
        "ready", [{"number": 1, "reason": reason}], False,
    )  # fmt: skip
    staff = logged_in(staff_make())
    change = staff.get(reverse("admin:documents_document_change", args=[document.id]))
    assert reason in change.content.decode()
    changelist = staff.get(reverse("admin:documents_document_changelist")).content.decode()
    assert "4 (1 damaged)" in changelist


def test_files_poppler_cannot_read_are_read_by_pdfium(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    client = logged_in(owner)
    # Poppler finds no pages in this page tree; a header after 1 000 bytes of junk.
    no_count = pdf_make_troubled(tmp_path / "no-count.pdf", pages=3, count=0)
    junk = pdf_make_junk_before_header(tmp_path / "junk.pdf", junk=b"X-Mailer: junk\r\n" * 60)

    for path, pages in ((no_count, 3), (junk, 2)):
        document = document_wait(_upload(client, path).id)
        assert document.status == Status.READY, f"{path.name}: {document.error}"
        assert document.pages_total == pages
        assert pages_count(owner_id=owner.pk, document_id=document.id) == pages
        assert not DamagedPage.objects.filter(document=document).exists()
    assert Document.objects.get(original_name="no-count.pdf").pages.get(number=2).text == (
        "Page 2 of the troubled file"
    )


def test_a_document_without_a_renderable_page_fails_and_offers_no_retry(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    client = logged_in(owner)
    cases = {
        pdf_make_troubled(tmp_path / "all-tiny.pdf", pages=2, tiny=[1, 2]): (
            "None of its 2 pages could be rendered.",
            "damaged",
        ),
        pdf_make_no_pages(tmp_path / "no-pages.pdf"): ("This PDF has no pages.", "empty"),
    }
    for path, (reason, code) in cases.items():
        document = document_wait(_upload(client, path).id)
        assert (document.status, document.error, document.error_code) == (
            Status.FAILED, reason, code,
        )  # fmt: skip
        assert pages_count(owner_id=owner.pk, document_id=document.id) == 0
        detail = client.get(reverse("documents:detail", args=[document.id])).content.decode()
        assert reason in detail
        assert "data-retry" not in detail and "data-unlock-link" not in detail
        assert _api_get(client, document)["can_retry"] is False


def test_a_password_protected_pdf_is_unlocked_by_its_owner(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner, stranger = user_make(), user_make()
    client = logged_in(owner)
    password = "open sesame 8a4f"
    path = pdf_make(
        tmp_path / "locked.pdf",
        pages=[["Quarterly secret figures"], ["Second locked page"]],
        user_password=password,
    )
    original_bytes = path.read_bytes()

    document = document_wait(_upload(client, path).id)

    assert (document.status, document.error_code) == (Status.FAILED, "encrypted")
    assert document.error == "This PDF is password-protected."
    detail = client.get(reverse("documents:detail", args=[document.id])).content.decode()
    assert "data-unlock-link" in detail and 'id="unlock"' in detail
    assert "data-retry" not in detail
    unlock = reverse("documents:unlock", args=[document.id])

    # Someone else's document is not there for them; a wrong password changes nothing.
    assert logged_in(stranger).post(unlock, {"password": password}).status_code == 404
    wrong = client.post(unlock, {"password": "guess"}, follow=True)
    assert "That password does not open this PDF." in wrong.content.decode()
    assert Document.objects.get(id=document.id).status == Status.FAILED
    assert Path(document.file.path).read_bytes() == original_bytes

    right = client.post(unlock, {"password": password}, follow=True)
    assert "is unlocked and queued again." in right.content.decode()
    document = document_wait(document.id)

    assert document.status == Status.READY, document.error
    assert document.pages_total == 2
    assert document.pages.get(number=1).text == "Quarterly secret figures"
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 2
    # The password was used once and kept nowhere: not in a row, not in the stored file,
    # which is the unlocked copy (the checksum stays the upload's, for duplicate checks).
    for row in (*Document.objects.values(), *PipelineRun.objects.values()):
        assert password not in repr(row)
    stored = Path(document.file.path).read_bytes()
    assert b"/Encrypt" not in stored and password.encode() not in stored
    assert stored != original_bytes
    with path.open("rb") as again:
        response = client.post(reverse("documents:upload"), {"file": again}, follow=True)
    assert "was already uploaded" in response.content.decode()
