"""Upload → Celery worker → Weaviate (vectorized by our embedder) → search → delete, for real."""

import base64
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from django.test import Client
from django.urls import reverse

from docdb.documents import services
from docdb.documents.libraries import library_ids_visible
from docdb.documents.models import Document, Page, Status
from docdb.documents.states import document_transition
from docdb.search.maps import page_maps_make
from docdb.weaviate_store import (
    SearchMode,
    page_multivector,
    page_vector,
    pages_count,
    pages_search,
)
from tests.conftest import LoggedIn, Stack
from tests.helpers import (
    PAGE_TEXTS,
    UNIQUE_PAGE,
    UNIQUE_PHRASE,
    document_stored,
    document_wait,
    report_pdf,
    user_make,
)
from tests.pdf_factory import file_make_not_pdf, pdf_make, pdf_make_raw_pages

pytestmark = pytest.mark.timeout(600)


def _upload(client: Client, *paths: Path) -> list[Document]:
    before = set(Document.objects.values_list("id", flat=True))
    files = [path.open("rb") for path in paths]
    try:
        response = client.post(reverse("documents:upload"), {"file": files})
    finally:
        for handle in files:
            handle.close()
    assert response.status_code == 302
    return list(Document.objects.exclude(id__in=before))


def _embed_directly(stack: Stack, jpeg: bytes) -> np.ndarray:
    response = requests.post(
        f"{stack.embedder.url}/v1/embeddings/embed",
        json={"input": [base64.b64encode(jpeg).decode()], "model": "ModernVBERT/colmodernvbert"},
        headers={"Authorization": f"Bearer {stack.embedder.api_key}"},
        timeout=60,
    )
    response.raise_for_status()
    return np.asarray(response.json()["embeddings"][0], dtype=np.float32)


def test_upload_index_search_delete(live: Stack, tmp_path: Path, logged_in: LoggedIn) -> None:
    owner = user_make()
    stranger = user_make()
    client = logged_in(owner)
    images_before = live.embedder.health()["counters"]["images_embedded"]  # type: ignore[index]

    (document,) = _upload(client, report_pdf(tmp_path))
    # The upload answers at once; an idle worker may already have claimed the document.
    assert document.status in (Status.QUEUED, Status.PROCESSING)
    document = document_wait(document.id)

    assert document.status == Status.READY, document.error
    assert (document.pages_total, document.pages_done) == (5, 5)
    pages = list(document.pages.order_by("number"))
    assert [page.number for page in pages] == [1, 2, 3, 4, 5]
    assert UNIQUE_PHRASE in pages[UNIQUE_PAGE - 1].text
    for page in pages:
        assert page.indexed_at is not None
        assert page.image_path.stat().st_size > 0
        assert page.thumbnail_path.stat().st_size > 0
        assert max(page.width, page.height) == 1024

    # Weaviate holds one object per page, vectorized by our embedder: it counted the images, and
    # the stored multi-vector is what the embedder returns for that very page image.
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 5
    images_after = live.embedder.health()["counters"]["images_embedded"]  # type: ignore[index]
    assert images_after - images_before >= 5
    stored = np.asarray(page_vector(document.id, 2), dtype=np.float32)
    direct = _embed_directly(live, pages[1].image_path.read_bytes())
    assert stored.shape == direct.shape and stored.shape[1] == 128
    np.testing.assert_allclose(stored, direct, atol=1e-4)

    # Keyword search ranks the page carrying the phrase first; the other modes find the pages.
    keyword = client.get(reverse("search:search"), {"q": UNIQUE_PHRASE, "mode": "keyword"})
    assert keyword.status_code == 200
    results = keyword.context["results"]
    assert results[0].page.document_id == document.id
    assert results[0].page.number == UNIQUE_PAGE
    for mode in ("vector", "hybrid"):
        response = client.get(reverse("search:search"), {"q": "bamboo strength", "mode": mode})
        found = {(r.page.document_id, r.page.number) for r in response.context["results"]}
        assert found == {(document.id, n) for n in range(1, 6)}, mode
        assert "thumbnail" in response.content.decode()

    # The stranger sees none of it, neither in search nor by URL.
    stranger_client = logged_in(stranger)
    for mode in SearchMode:
        assert (
            pages_search(
                library_ids=library_ids_visible(user=stranger), query="bamboo", mode=mode, limit=10
            )
            == []
        )
        response = stranger_client.get(reverse("search:search"), {"q": "bamboo", "mode": mode})
        assert response.context.get("results") == []
    for name, args in [
        ("documents:detail", [document.id]),
        ("documents:file", [document.id]),
        ("documents:page", [document.id, 1]),
        ("documents:page_image", [document.id, 1]),
        ("documents:page_thumbnail", [document.id, 1]),
        ("documents:delete", [document.id]),
    ]:
        assert stranger_client.get(reverse(name, args=args)).status_code == 404, name
    assert stranger_client.post(reverse("documents:delete", args=[document.id])).status_code == 404
    statuses = stranger_client.get(reverse("documents:statuses"), {"id": str(document.id)})
    assert statuses.json() == {"documents": []}

    # The owner's pages are all there, and the PDF opens at a page.
    assert client.get(reverse("documents:page_image", args=[document.id, 3])).status_code == 200
    page_view = client.get(reverse("documents:page", args=[document.id, 3]))
    assert "file/#page=3" in page_view.content.decode()

    # Delete removes rows, files and Weaviate objects.
    directory = document.directory
    assert directory.is_dir()
    response = client.post(reverse("documents:delete", args=[document.id]))
    assert response.status_code == 302
    assert not Document.objects.filter(id=document.id).exists()
    assert not Page.objects.filter(document_id=document.id).exists()
    assert not directory.exists()
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 0


def test_upload_rejects_non_pdf_duplicates_and_reports_encrypted(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    client = logged_in(owner)
    fake = file_make_not_pdf(tmp_path / "invoice.pdf")
    (report,) = _upload(client, report_pdf(tmp_path))

    response = client.post(
        reverse("documents:upload"),
        {"file": [fake.open("rb"), report_pdf(tmp_path, "again.pdf").open("rb")]},
        follow=True,
    )
    text = response.content.decode()
    assert "invoice.pdf: this file is not a PDF." in text
    assert "already uploaded as" in text
    assert Document.objects.filter(owner=owner).count() == 1

    locked = pdf_make(tmp_path / "locked.pdf", pages=[["secret"]], user_password="s3cret")
    (encrypted,) = _upload(client, locked)
    encrypted = document_wait(encrypted.id)
    assert encrypted.status == Status.FAILED
    assert encrypted.error == "This PDF is password-protected."
    assert pages_count(owner_id=owner.pk, document_id=encrypted.id) == 0

    # A failed document can be retried; it fails the same clear way again.
    response = client.post(reverse("documents:retry", args=[encrypted.id]))
    assert response.status_code == 302
    assert Document.objects.get(id=encrypted.id).status in (
        Status.QUEUED,
        Status.PROCESSING,
        Status.FAILED,
    )
    assert document_wait(encrypted.id).error == "This PDF is password-protected."
    assert document_wait(report.id).status == Status.READY


def test_ingest_twice_overwrites_instead_of_duplicating(live: Stack, tmp_path: Path) -> None:
    """Run the ingestion service in this process (no queue), then again as a re-delivery would."""
    owner = user_make()
    path = report_pdf(tmp_path, salt="idempotent")
    document = Document(
        owner=owner,
        title="Twice",
        original_name="twice.pdf",
        sha256=uuid.uuid4().hex,
        status=Status.QUEUED,
    )
    with path.open("rb") as handle:
        from django.core.files import File

        document.file.save("original.pdf", File(handle), save=True)

    services.document_ingest(document_id=document.id)
    assert Document.objects.get(id=document.id).status == Status.READY

    # A redelivered task after a crash: state still processing, two pages not marked indexed.
    Document.objects.filter(id=document.id).update(status=Status.PROCESSING)
    Page.objects.filter(document=document, number__in=[2, 4]).update(indexed_at=None)
    services.document_ingest(document_id=document.id)
    document.refresh_from_db()
    assert document.status == Status.READY
    assert document.pages_done == len(PAGE_TEXTS)
    assert Page.objects.filter(document=document).count() == len(PAGE_TEXTS)
    assert pages_count(owner_id=owner.pk, document_id=document.id) == len(PAGE_TEXTS)

    # A ready document is not claimed again by a stray duplicate task.
    assert not document_transition(document_id=document.id, to=Status.PROCESSING)


# Page shapes in PDF points, the tiles ColModernVBERT's processor cuts them into (rows x columns
# of 512 px, plus the whole page) and the vectors stored for them (test_embedder.REAL_PAGES says
# how they add up).
PAGE_SHAPES = [
    ("A4", "0 0 595 842", (4, 3), 882),
    ("US Letter", "0 0 612 792", (4, 4), 1146),
    ("landscape slide, 16:9", "0 0 960 540", (3, 4), 881),
    ("receipt, 80 x 360 mm", "0 0 227 1020", (4, 1), 354),
]


def test_pages_of_each_shape_are_stored_with_the_real_model_s_tiles(
    live: Stack, tmp_path: Path
) -> None:
    """Rendered, embedded by Weaviate through the embedder and stored: each page keeps as many
    vectors as its tiles make, and its similarity maps cover its tile grid."""
    owner = user_make()
    path = pdf_make_raw_pages(
        tmp_path / "shapes.pdf", media_boxes=[box for _, box, _, _ in PAGE_SHAPES]
    )
    document = document_stored(owner, path)
    services.document_ingest(document_id=document.id)
    assert Document.objects.get(id=document.id).status == Status.READY

    for number, (shape, _, (rows, cols), vectors) in enumerate(PAGE_SHAPES, start=1):
        stored = page_multivector(
            library_ids=library_ids_visible(user=owner), document_id=document.id, page_number=number
        )
        assert stored is not None and len(stored) == vectors, shape
        page = Page.objects.get(document=document, number=number)
        maps = page_maps_make(page=page, query="total due")
        assert (maps.rows, maps.cols) == (rows * 8, cols * 8), shape
