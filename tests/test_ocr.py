"""Scanned pages (no text layer) get their text from Tesseract in the worker, so keyword search
and snippets find them; with OCR off they stay without text."""

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from docdb import pdf
from docdb.config import ocr_packages
from docdb.documents import services
from docdb.documents.models import Document, Page, Status, TextSource
from tests.conftest import LoggedIn, Stack
from tests.helpers import document_stored, document_wait, user_make
from tests.pdf_factory import pdf_make_scanned

pytestmark = [pytest.mark.sqlite_pass, pytest.mark.timeout(300)]

SCANNED_PAGES = [
    ["Harbour inventory", "anchors and mooring ropes"],
    ["Orchard ledger", "quince marmalade jars"],
    ["Observatory log", "nebula sightings tonight"],
]


def _upload(client: Client, path: Path) -> Document:
    with path.open("rb") as handle:
        response = client.post(reverse("documents:upload"), {"file": [handle]})
    assert response.status_code == 302
    return Document.objects.get(original_name=path.name)


def test_scanned_pages_are_found_by_their_words(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    client = logged_in(user_make())
    scan = pdf_make_scanned(tmp_path / "scan.pdf", pages=SCANNED_PAGES)
    assert pdf.pages_text(scan, first=1, last=3, timeout=30) == {1: "", 2: "", 3: ""}

    document = document_wait(_upload(client, scan).id)

    assert document.status == Status.READY, document.error
    pages = list(document.pages.order_by("number"))
    assert [page.text_source for page in pages] == [TextSource.OCR] * 3
    assert "quince marmalade" in pages[1].text.lower()
    response = client.get(reverse("search:search"), {"q": "quince marmalade", "mode": "keyword"})
    first = response.context["results"][0]
    assert (first.page.document_id, first.page.number) == (document.id, 2)
    assert "<mark>quince</mark> <mark>marmalade</mark>" in response.content.decode().lower()
    page_view = client.get(reverse("documents:page", args=[document.id, 2]))
    assert "data-text-source" in page_view.content.decode()


def test_with_ocr_off_or_failing_pages_have_no_text_and_a_run_again_reads_them(
    live: Stack, tmp_path: Path, settings: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Ingestion in this process, where the settings can change (the worker's are fixed)."""
    scan = pdf_make_scanned(tmp_path / "scan.pdf", pages=SCANNED_PAGES[2:])
    document = document_stored(user_make(), scan)

    def ingest(**changed: object) -> Page:
        for name, value in {"OCR": "auto", "OCR_LANGUAGES": ["eng"], **changed}.items():
            setattr(settings, name, value)
        # As a re-delivered turn runs: the page is read again and overwritten.
        Document.objects.filter(id=document.id).update(status=Status.QUEUED, pages_done=0)
        Page.objects.filter(document=document).update(indexed_at=None)
        services.document_ingest(document_id=document.id)
        assert Document.objects.get(id=document.id).status == Status.READY
        return Page.objects.get(document=document)

    off = ingest(OCR="off")
    assert (off.text, off.text_source) == ("", TextSource.NONE)

    # A language pack missing in the worker: the page keeps no text, the document is ready.
    failed = ingest(OCR_LANGUAGES=["zzz"])
    assert (failed.text, failed.text_source) == ("", TextSource.NONE)
    assert "no text from OCR: Tesseract failed" in caplog.text

    read = ingest()
    assert read.text_source == TextSource.OCR
    assert "nebula sightings" in read.text.lower()


def test_a_missing_tesseract_or_language_pack_is_named_with_its_debian_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert pdf.ocr_check(["eng"]).languages
    with pytest.raises(pdf.OcrError, match="install the Debian package tesseract-ocr-chi-sim"):
        pdf.ocr_check(["eng", "chi_sim"])
    monkeypatch.setattr("docdb.pdf.ocr.TESSERACT", "/nonexistent/tesseract")
    with pytest.raises(pdf.OcrError, match="Tesseract is not installed: install the Debian"):
        pdf.ocr_check(["eng"])
    with pytest.raises(pdf.OcrError, match="not installed"):
        pdf.image_ocr(b"", languages=["eng"], timeout=5)
    env = {"DOCDB_OCR_LANGUAGES": "eng,chi_sim"}
    assert ocr_packages(env) == ["tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-chi-sim"]
    assert ocr_packages({"DOCDB_OCR": "off"}) == []
