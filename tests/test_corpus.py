"""The shared corpus (DOCDB_CORPUS_DIR) through the whole pipeline (group `corpus`)."""

import collections
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from docdb import pdf
from docdb.documents.models import DamagedPage, Document, Page, Status
from docdb.documents.services import UploadRejected, document_upload
from docdb.pdf import pdfium, poppler
from docdb.pdf.pagefiles import image_blank
from docdb.weaviate_store import pages_count
from tests.conftest import TEST_PDF_MAX_PAGES, LoggedIn, Stack
from tests.helpers import document_wait, user_make

pytestmark = [pytest.mark.corpus, pytest.mark.timeout(900)]

# Pages of each file the oracle renders to decide whether an engine draws anything.
ORACLE_PAGES = 3
ENCRYPTED = "This PDF is password-protected."


@dataclass(frozen=True)
class Expected:
    """What the engines, asked one by one, say of a file, before the pipeline sees it."""

    pages: int | None  # from the first engine that reads the file
    encrypted: bool  # an engine says it needs a password
    content: bool  # an engine draws something on one of its first pages


def _expected(path: Path) -> Expected:
    counts, codes = [], set()
    for inspect in (poppler.pdf_inspect, pdfium.pdfium_inspect):
        try:
            counts.append(inspect(path, max_pages=100_000, timeout=60).pages)
        except pdf.PdfError as exc:
            codes.add(exc.code)
    if not counts:
        return Expected(pages=None, encrypted="encrypted" in codes, content=False)
    last = min(counts[0], ORACLE_PAGES)
    options = {"longest_edge": 256, "max_pixels": 256**2}
    drawn = False
    for number in range(1, last + 1):
        try:
            first = poppler.pages_render_each(
                path, first=number, last=number, timeout=60, **options
            )
        except (pdf.PdfError, ValueError):
            first = {}
        second = pdfium.pdfium_render_each(path, [number], per_page=60, **options)
        images = [*first.values(), *second.values()]
        drawn |= any(not isinstance(i, pdf.PdfError) and not image_blank(i) for i in images)
    return Expected(pages=counts[0], encrypted="encrypted" in codes, content=drawn)


@pytest.mark.timeout(3600)
def test_every_corpus_file_ends_ready_with_its_pages_or_with_a_reason(
    live: Stack, corpus_dir: Path
) -> None:
    """Every file that poppler or PDFium renders with content ends ready with its page count
    (up to the page limit), encrypted ones with the password reason, none stuck; the numbers
    for the whole corpus are printed (run with -s)."""
    files = sorted(p for p in corpus_dir.rglob("*") if p.is_file() and p.name != "README.md")
    expected = {path: _expected(path) for path in files}
    documents: dict[Path, Document] = {}
    rejected: dict[Path, str] = {}
    for path in files:
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
        try:
            # One person per file: the corpus may hold one file twice under two names.
            documents[path] = document_upload(owner=user_make(), upload=upload)
        except UploadRejected as exc:
            rejected[path] = exc.reason

    finished = {path: document_wait(d.id, timeout=3000) for path, d in documents.items()}

    for path, reason in rejected.items():
        assert expected[path].pages is None and not expected[path].encrypted, (path, reason)
    for path, document in finished.items():
        want = expected[path]
        if want.encrypted:
            assert (document.status, document.error) == (Status.FAILED, ENCRYPTED), path
            assert document.error_code == "encrypted"
        elif want.content and want.pages is not None and want.pages <= TEST_PDF_MAX_PAGES:
            assert document.status == Status.READY, f"{path.name}: {document.error}"
            assert document.pages_total == want.pages, path.name
        if document.status == Status.READY:
            damaged = DamagedPage.objects.filter(document=document).count()
            indexed = pages_count(owner_id=document.owner_id, document_id=document.id)
            rows = Page.objects.filter(document=document).count()
            assert indexed == rows == document.pages_total - damaged, path.name
        else:
            assert document.status == Status.FAILED and document.error, path.name
            assert pages_count(owner_id=document.owner_id, document_id=document.id) == 0
    _report(files, rejected, finished)


def _report(files: list[Path], rejected: dict[Path, str], finished: dict[Path, Document]) -> None:
    ready = [d for d in finished.values() if d.status == Status.READY]
    failed = collections.Counter(
        d.error_code or d.error for d in finished.values() if d.status == Status.FAILED
    )
    refused = collections.Counter(reason.split(": ", 1)[-1] for reason in rejected.values())
    damaged = DamagedPage.objects.filter(document__in=ready).count()
    print(
        f"\ncorpus: {len(files)} files; {len(rejected)} refused at upload {dict(refused)}; "
        f"{len(ready)} ready; {sum(failed.values())} failed {dict(failed)}; "
        f"{sum(d.pages_total for d in ready)} pages in ready documents, {damaged} damaged"
    )
    for path, document in sorted(finished.items()):
        print(
            f"  {path.parent.name}/{path.name}: {document.status} {document.pages_total} pages "
            f"{document.error}"
        )


def test_tracemonkey_through_web_and_api(
    live: Stack, corpus_dir: Path, logged_in: LoggedIn
) -> None:
    paper = corpus_dir / "real" / "tracemonkey.pdf"
    web_user, api_user = user_make(), user_make()
    client = logged_in(web_user)
    with paper.open("rb") as handle:
        assert client.post(reverse("documents:upload"), {"file": handle}).status_code == 302
    web_document = Document.objects.get(owner=web_user)

    from tests.test_api import _api, _token_for

    api = _api(_token_for(api_user.username))
    with paper.open("rb") as handle:
        response = api.post("/api/documents", {"file": handle})
    assert response.status_code == 201
    api_document = Document.objects.get(owner=api_user)

    for document, owner in ((web_document, web_user), (api_document, api_user)):
        document = document_wait(document.id, timeout=600)
        assert document.status == Status.READY, document.error
        assert document.pages_total == document.pages_done == 14
        assert pages_count(owner_id=owner.pk, document_id=document.id) == 14

    # Authors' names printed on the title page (one of them cited again on page 14): the
    # keyword search ranks page 1 first, and shows only this owner's pages.
    response = client.get(
        reverse("search:search"), {"q": "Shaver Orendorff Haghighat", "mode": "keyword"}
    )
    results = response.context["results"]
    assert results[0].page.document_id == web_document.id
    assert results[0].page.number == 1
    assert {r.page.document.owner_id for r in results} == {web_user.pk}
    for mode in ("vector", "hybrid"):
        response = client.get(reverse("search:search"), {"q": "tracing JIT compiler", "mode": mode})
        assert response.context["results"], mode
