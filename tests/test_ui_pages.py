"""The pages and JSON endpoints of the upload and search experience, without the services.

Nothing here reaches Weaviate, Redis or the embedder: every case stops before them (validation,
ownership, the Weaviate Cloud switch), needs only the database and files on disk, or (one case)
gets the search index's answers from a stand-in.
"""

import hashlib
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from PIL import Image

from docdb.documents.libraries import library_ids_visible
from docdb.documents.models import Document, Page, Status
from docdb.search import services as search_services
from docdb.weaviate_store import PageHit, Ranking, WeaviateUnavailable, page_uuid
from tests.conftest import LoggedIn
from tests.helpers import user_make

# Views over the same ORM queries the PostgreSQL pass tests: the SQLite pass runs them.
pytestmark = pytest.mark.sqlite_pass


def _document(owner: object, title: str, **fields: object) -> Document:
    document = Document.objects.create(
        owner=owner,
        title=title,
        original_name=f"{title}.pdf",
        sha256=hashlib.sha256(title.encode()).hexdigest(),
        size_bytes=1000,
        **fields,
    )
    return document


def _page(document: Document, number: int) -> Page:
    return Page.objects.create(
        document=document,
        number=number,
        width=40,
        height=60,
        search_id=uuid.UUID(page_uuid(document.id, number)),
    )


@pytest.fixture
def media(tmp_path: Path) -> Path:
    with override_settings(MEDIA_ROOT=tmp_path):
        yield tmp_path


def test_documents_list_sorts_filters_and_pages(db: None, logged_in: LoggedIn) -> None:
    owner = user_make()
    for index, (title, status) in enumerate(
        [("Beta", Status.READY), ("alpha", Status.FAILED), ("Gamma", Status.QUEUED)]
    ):
        _document(owner, title, status=status, pages_total=index + 1, error="bad file")
    client = logged_in(owner)

    def titles(**params: str) -> list[str]:
        response = client.get(reverse("documents:list"), params)
        assert response.status_code == 200
        return [document.title for document in response.context["page_obj"]]

    assert titles(sort="title") == ["alpha", "Beta", "Gamma"]
    assert titles(sort="-pages") == ["Gamma", "alpha", "Beta"]
    assert titles(status="failed") == ["alpha"]
    assert titles(sort="bogus", status="bogus") == ["Gamma", "alpha", "Beta"]  # newest first
    body = client.get(reverse("documents:list"), {"status": "failed"}).content.decode()
    assert "bad file" in body and "Retry" in body
    assert (
        'aria-sort="ascending"'
        in client.get(reverse("documents:list"), {"sort": "title"}).content.decode()
    )


def test_documents_list_paginates_keeping_the_sort(db: None, logged_in: LoggedIn) -> None:
    owner = user_make()
    for index in range(30):
        _document(owner, f"doc {index:02d}")
    client = logged_in(owner)
    response = client.get(reverse("documents:list"), {"sort": "title"})
    assert len(response.context["page_obj"]) == 25
    assert "sort=title&amp;page=2" in response.content.decode()
    second = client.get(reverse("documents:list"), {"sort": "title", "page": 2})
    assert [d.title for d in second.context["page_obj"]] == [f"doc {n}" for n in range(25, 30)]


def test_rename_checks_the_title_owner_and_next(db: None, logged_in: LoggedIn) -> None:
    owner, stranger = user_make(), user_make()
    document = _document(owner, "Old name")
    url = reverse("documents:rename", args=[document.id])
    assert logged_in(stranger).post(url, {"title": "Mine now"}).status_code == 404
    client = logged_in(owner)

    response = client.post(url, {"title": "   "}, follow=True)
    assert "A title needs 1 to 300 characters." in response.content.decode()
    # No indexed pages: nothing to change in Weaviate, so this needs no server.
    response = client.post(url, {"title": "  New   name ", "next": "https://evil.example/"})
    assert response["Location"] == reverse("documents:list")
    assert Document.objects.get(id=document.id).title == "New name"
    response = client.post(
        url, {"title": "Again", "next": reverse("documents:detail", args=[document.id])}
    )
    assert response["Location"] == reverse("documents:detail", args=[document.id])


def test_upload_endpoint_answers_json_per_file(db: None, logged_in: LoggedIn) -> None:
    owner = user_make()
    client = logged_in(owner)
    url = reverse("documents:upload_file")
    pdf_bytes = b"%PDF-1.4\n% an already uploaded file\n"
    original = _document(owner, "First copy")
    Document.objects.filter(id=original.id).update(sha256=hashlib.sha256(pdf_bytes).hexdigest())

    duplicate = client.post(url, {"file": SimpleUploadedFile("again.pdf", pdf_bytes)})
    assert duplicate.status_code == 409
    assert duplicate.json()["duplicate_of"] == {
        "id": str(original.id),
        "title": "First copy",
        "url": reverse("documents:detail", args=[original.id]),
    }
    hostile = client.post(
        url, {"file": SimpleUploadedFile("evil<img src=x>.pdf", b"MZ\x90\x00 not a pdf")}
    )
    assert hostile.status_code == 400
    assert hostile.json() == {"error": "evil<img src=x>.pdf: this file is not a PDF."}
    assert client.post(url, {}).status_code == 400
    assert Document.objects.count() == 1


def test_upload_endpoint_needs_the_csrf_token(db: None, logged_in: LoggedIn) -> None:
    owner = user_make()
    client = logged_in(owner, enforce_csrf_checks=True)
    response = client.post(
        reverse("documents:upload_file"), {"file": SimpleUploadedFile("a.pdf", b"%PDF")}
    )
    assert response.status_code == 403


def test_statuses_answer_for_the_owners_documents_only(db: None, logged_in: LoggedIn) -> None:
    owner, stranger = user_make(), user_make()
    theirs = _document(stranger, "theirs")
    queued = _document(owner, "queued")
    body = (
        logged_in(owner)
        .get(reverse("documents:statuses"), {"id": [str(queued.id), str(theirs.id)]})
        .json()
    )
    (doc,) = body["documents"]
    assert (doc["id"], doc["phase"], doc["queue_position"]) == (str(queued.id), "queued", 1)
    # The same rendering as the pages': the script shows it as it is.
    assert f'data-document-status="{queued.id}"' in doc["status_html"]
    assert "Cancel" in doc["status_html"]

    ready = _document(owner, "ready", status=Status.READY, pages_total=2, pages_done=2)
    body = logged_in(owner).get(reverse("documents:statuses"), {"id": [str(ready.id)]}).json()
    assert "worker" not in body  # nothing waits, so no worker check
    (doc,) = body["documents"]
    assert doc["status"] == "ready"
    assert doc["thumbnail_url"] == reverse("documents:page_thumbnail", args=[ready.id, 1])


def test_search_form_errors_are_shown_not_raised(db: None, logged_in: LoggedIn) -> None:
    owner, stranger = user_make(), user_make()
    theirs = _document(stranger, "Theirs", status=Status.READY)
    client = logged_in(owner)
    response = client.get(
        reverse("search:search"),
        {
            "q": "x",
            "alpha": "7",
            "date_from": "2024-05-02",
            "date_to": "2024-05-01",
            "document": str(theirs.id),
        },
    )
    assert response.status_code == 200
    body = response.content.decode()
    # Each error names its field as the page does, not by its parameter.
    assert "Uploaded to: The end date is before the start date." in body
    assert "Keyword/semantic balance: Ensure this value is less than or equal to 1" in body
    assert "Documents: Select a valid choice" in body  # someone else's document is no choice
    assert "Date_to" not in body and "Alpha:" not in body
    assert "results" not in response.context


def test_search_page_has_a_heading_and_wraps_a_long_query(db: None, logged_in: LoggedIn) -> None:
    client = logged_in(user_make())
    body = client.get(reverse("search:search")).content.decode()
    assert '<h1 class="sr-only">Search your documents</h1>' in body
    css = (Path(__file__).resolve().parent.parent / "static/docdb/app.css").read_text()
    # The summary and the "no pages match" card repeat the query: up to 500 characters.
    assert (
        ".result-summary {" in css
        and "overflow-wrap: anywhere" in css.split(".result-summary {")[1].split("}")[0]
    )


def test_search_page_without_query_greets_new_users(db: None, logged_in: LoggedIn) -> None:
    client = logged_in(user_make())
    body = client.get(reverse("search:search")).content.decode()
    assert "Welcome to DocDB" in body
    assert "data-search-input" in body


def test_page_view_download_and_maps_switch(db: None, media: Path, logged_in: LoggedIn) -> None:
    owner, stranger = user_make(), user_make()
    document = _document(owner, "Report", status=Status.READY, pages_total=2)
    document.file.save("original.pdf", ContentFile(b"%PDF-1.4"), save=True)
    page = Page.objects.create(document=document, number=1, width=40, height=60, text="hello")
    page.image_path.parent.mkdir(parents=True)
    Image.new("RGB", (40, 60), "white").save(page.image_path)
    client = logged_in(owner)

    view = client.get(reverse("documents:page", args=[document.id, 1]), {"q": "revenue"})
    body = view.content.decode()
    assert 'rel="next"' in body and 'rel="prev"' not in body
    assert "?download=1" in body and "#page=1" in body
    assert 'value="revenue"' in body

    download = client.get(reverse("documents:page_image", args=[document.id, 1]), {"download": "1"})
    assert download["Content-Disposition"].startswith("attachment;")
    assert "Report - page 1.jpg" in download["Content-Disposition"]

    maps_url = reverse("search:page_maps", args=[document.id, 1])
    assert client.get(maps_url).status_code == 400  # no query
    assert logged_in(stranger).get(maps_url, {"q": "x"}).status_code == 404
    assert (
        logged_in(stranger).get(reverse("search:page_similar", args=[document.id, 1])).status_code
        == 404
    )
    with override_settings(WEAVIATE_CLOUD=True):
        answer = client.get(maps_url, {"q": "revenue"}).json()
        assert answer["cloud"] is True and "Weaviate Cloud" in answer["error"]
        body = client.get(reverse("documents:page", args=[document.id, 1])).content.decode()
        assert "Weaviate Cloud" in body and "maps-bar off" in body


def test_unknown_page_numbers_are_404(db: None, logged_in: LoggedIn) -> None:
    owner = user_make()
    client = logged_in(owner)
    missing = uuid.uuid4()
    assert client.get(reverse("documents:page", args=[missing, 1])).status_code == 404
    assert client.get(reverse("search:page_maps", args=[missing, 1]), {"q": "a"}).status_code == 404


def test_search_keeps_the_index_order_and_explains_an_index_that_does_not_answer(
    db: None, logged_in: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weaviate's `pages_ranked` is replaced here, at the boundary the search service calls, to
    check what the service and the view make of its answers without a server; the real index is
    searched in test_ui_live.py (the same messages with Weaviate gone) and test_two_stage.py."""
    owner, stranger = user_make(), user_make()
    ready = _document(owner, "Ready", status=Status.READY)
    failed = _document(owner, "Failed", status=Status.FAILED)
    theirs = _document(stranger, "Theirs", status=Status.READY)
    hits = [
        PageHit(object_id=_page(ready, 3).search_id, score=0.9),
        PageHit(object_id=_page(theirs, 1).search_id, score=0.8),
        PageHit(object_id=_page(ready, 1).search_id, score=0.7),
        PageHit(object_id=_page(failed, 1).search_id, score=0.6),
    ]
    answers: list[list[PageHit] | Exception] = [hits, WeaviateUnavailable("down")]
    asked: list[dict[str, object]] = []

    def pages_ranked(**kwargs: object) -> Ranking:
        asked.append(kwargs)
        answer = answers[min(len(asked), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return Ranking(hits=answer, best_score=answer[0].score)

    monkeypatch.setattr(search_services, "pages_ranked", pages_ranked)
    client = logged_in(owner)
    url = reverse("search:search")

    found = client.get(url, {"q": "bamboo", "mode": "hybrid", "alpha": "0.3"})
    # The index's order; another owner's page and a failed document's page never show.
    assert [(r.page.document, r.page.number) for r in found.context["results"]] == [
        (ready, 3),
        (ready, 1),
    ]
    assert [r.score for r in found.context["results"]] == [0.9, 0.7]
    assert asked[0]["library_ids"] == library_ids_visible(user=owner)
    assert asked[0]["alpha"] == 0.3
    assert asked[0]["limit"] == search_services.PAGE_SIZE + 1  # one more tells of a next page

    down = client.get(url, {"q": "bamboo"})
    assert down.status_code == 200
    assert "the search index did not answer" in down.content.decode()
    # "More results" fetches cards alone; failing, it says so with a status the script reads.
    more = client.get(url, {"q": "bamboo", "page": "2", "partial": "1"})
    assert more.status_code == 503


def test_a_person_cancels_a_waiting_document_once(db: None, logged_in: LoggedIn) -> None:
    owner, stranger = user_make(), user_make()
    queued = _document(owner, "queued")
    url = reverse("documents:cancel", args=[queued.id])
    assert logged_in(stranger).post(url).status_code == 404
    client = logged_in(owner)
    body = client.post(url, headers={"Accept": "application/json"}).json()
    assert body["cancelled"] is True
    assert (body["document"]["status"], body["document"]["status_label"]) == (
        "cancelled",
        "Cancelled",
    )
    assert "Process again" in body["document"]["status_html"]
    # Finished already: nothing changes, and the page says so.
    again = client.post(url, follow=True)
    assert "had already finished" in again.content.decode()
    assert Document.objects.get(id=queued.id).status == Status.CANCELLED


def test_a_long_document_opens_a_page_by_its_number(db: None, logged_in: LoggedIn) -> None:
    owner, stranger = user_make(), user_make()
    document = _document(owner, "Handbook", status=Status.READY, pages_total=20)
    for number in range(1, 21):
        _page(document, number)
    client = logged_in(owner)
    detail = client.get(reverse("documents:detail", args=[document.id])).content.decode()
    assert 'name="number" min="1" max="20"' in detail
    jump = reverse("documents:page_jump", args=[document.id])
    assert client.get(jump, {"number": "17"}).headers["Location"] == reverse(
        "documents:page", args=[document.id, 17]
    )
    for wrong in ("21", "0", "seven", ""):
        response = client.get(jump, {"number": wrong}, follow=True)
        assert response.redirect_chain[-1][0] == reverse("documents:detail", args=[document.id])
        assert "this document has 20 pages." in response.content.decode()
    # Another person's document answers like one that does not exist.
    assert logged_in(stranger).get(jump, {"number": "1"}).status_code == 404
    # A short document needs no form.
    short = _document(owner, "Memo", status=Status.READY, pages_total=2)
    _page(short, 1)
    assert (
        'name="number"'
        not in client.get(reverse("documents:detail", args=[short.id])).content.decode()
    )
