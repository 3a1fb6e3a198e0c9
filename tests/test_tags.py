"""Tags and bulk actions: a person's own tags on their documents, the documents list's title
search, tag filter and selection, the search's tag filter and document type-ahead, the API.

Nothing here reaches Weaviate: search and deletion get the index's answers from stand-ins.
"""

import hashlib

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from docdb.api.models import ApiToken
from docdb.documents import services as document_services
from docdb.documents.models import Document, Library, Status, Tag
from docdb.documents.tags import TagRejected, document_tags_set, tag_get_or_create, tags_of
from docdb.search import services as search_services
from docdb.search.services import search_scope
from docdb.weaviate_store import Ranking
from tests.conftest import LoggedIn
from tests.helpers import user_make


def _document(owner: object, title: str, **fields: object) -> Document:
    values: dict[str, object] = {
        "original_name": f"{title}.pdf",
        "sha256": hashlib.sha256(f"{owner}{title}".encode()).hexdigest(),
        "size_bytes": 1000,
        **fields,
    }
    return Document.objects.create(owner=owner, title=title, **values)


def _messages(response: object) -> list[str]:
    return [str(message) for message in response.context["messages"]]  # type: ignore[attr-defined]


# --- the model and services: their subject is the database (both passes run them) ---


def test_a_tag_is_one_per_library_and_name_whatever_the_case(db: None) -> None:
    owner, other = user_make(), user_make()
    mine, theirs = Library.objects.personal(owner), Library.objects.personal(other)
    tax = tag_get_or_create(library=mine, owner=owner, name="  Tax   2024 ")
    assert tax.name == "Tax 2024"
    assert tag_get_or_create(library=mine, owner=other, name="tax 2024") == tax
    # Another library's tag of the same name is that library's alone.
    assert tag_get_or_create(library=theirs, owner=other, name="Tax 2024") != tax
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(library=mine, owner=owner, name="TAX 2024")
    for bad in ("", "   ", "x" * 51, "nul\x00"):
        with pytest.raises(TagRejected):
            tag_get_or_create(library=mine, owner=owner, name=bad)


def test_setting_tags_replaces_them_with_the_librarys_own(db: None) -> None:
    owner, other = user_make(), user_make()
    theirs = tag_get_or_create(library=Library.objects.personal(other), owner=other, name="secret")
    document = _document(owner, "Invoice")
    tags = document_tags_set(document=document, names=["b", "A", "a", "secret"])
    assert [tag.name for tag in tags] == ["A", "b", "secret"]
    assert theirs not in document.tags.all()
    assert {tag.owner_id for tag in document.tags.all()} == {owner.pk}
    document_tags_set(document=document, names=[])
    assert not document.tags.exists()
    # Tags no document carries any more are not offered, but come back with their name.
    assert not tags_of(user=owner)
    document_tags_set(document=document, names=["a"])
    assert tags_of(user=owner) == [tags[0]]


def test_search_scope_resolves_tags_among_the_owners_own(db: None) -> None:
    owner, other = user_make(), user_make()
    tagged, untagged = _document(owner, "Tagged"), _document(owner, "Plain")
    document_tags_set(document=tagged, names=["Tax", "2024"])
    foreign = _document(other, "Foreign")
    document_tags_set(document=foreign, names=["Tax"])
    assert search_scope(user=owner, tags=["tax"]) == [tagged.id]
    assert search_scope(user=owner, tags=["tax", "2024"]) == [tagged.id]
    assert search_scope(user=owner, tags=["nope"]) == []
    assert search_scope(user=other, tags=["2024"]) == []
    assert untagged.id not in (search_scope(user=owner, tags=["Tax"]) or [])


# --- views and the API over those queries: the SQLite pass runs them ---


@pytest.mark.sqlite_pass
def test_documents_list_searches_titles_filters_by_tag_and_shows_chips(
    db: None, logged_in: LoggedIn
) -> None:
    owner, other = user_make(), user_make()
    invoice = _document(owner, "Invoice March")
    _document(owner, "Letter", original_name="march-letter.pdf")
    _document(owner, "Report")
    document_tags_set(document=invoice, names=["Tax"])
    document_tags_set(document=_document(other, "Their invoice"), names=["Tax", "Theirs"])
    client = logged_in(owner)

    def titles(**params: str) -> list[str]:
        response = client.get(reverse("documents:list"), params)
        assert response.status_code == 200
        return sorted(document.title for document in response.context["page_obj"])

    assert titles(q="march") == ["Invoice March", "Letter"]
    assert titles(tag="tax") == ["Invoice March"]
    assert titles(tag="Theirs") == []
    assert titles(tag="tax", q="letter") == []
    body = client.get(reverse("documents:list")).content.decode()
    assert 'href="/documents/?tag=Tax"' in body
    assert "Theirs" not in body
    assert '<option value="Tax">' in body  # the bulk form's type-ahead


@pytest.mark.sqlite_pass
def test_bulk_actions_touch_only_the_owners_documents_and_say_what_they_skipped(
    db: None, logged_in: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, other = user_make(), user_make()
    ready = _document(owner, "Ready", status=Status.READY)
    failed = _document(owner, "Failed", status=Status.FAILED, error_code="timeout")
    hopeless = _document(owner, "Not a PDF", status=Status.FAILED, error_code="not_pdf")
    theirs = _document(other, "Theirs", status=Status.FAILED, error_code="timeout")
    monkeypatch.setattr(document_services, "pages_delete", lambda **_: None)
    client = logged_in(owner, enforce_csrf_checks=True)
    client.get(reverse("documents:list"))  # the CSRF cookie
    token = client.cookies["csrftoken"].value
    everything = [str(ready.id), str(failed.id), str(hopeless.id), str(theirs.id), "junk"]

    def bulk(action: str, tag: str = "") -> list[str]:
        response = client.post(
            reverse("documents:bulk"),
            {"document": everything, "action": action, "tag": tag, "csrfmiddlewaretoken": token},
            follow=True,
        )
        assert response.status_code == 200
        assert "Theirs" not in response.content.decode()
        return _messages(response)

    assert Client().post(reverse("documents:bulk"), {"action": "delete"}).status_code == 302
    assert bulk("tag", " Tax ") == ["Added the tag “Tax” to 3 documents."]
    assert not theirs.tags.exists()
    assert bulk("tag", "") == ["Type the tag to add or remove."]
    document_tags_set(document=ready, names=[])
    assert bulk("untag", "tax") == [
        "Removed the tag “tax” from 2 documents.",
        "“Ready” was left as it was: it has no such tag.",
    ]
    assert bulk("rerun") == [
        "Queued 1 document to be processed again.",
        "“Not a PDF” was left as it was: processing the same file again cannot help.",
        "“Ready” was left as it was: it is ready: there is nothing to process again.",
    ]
    failed.refresh_from_db()
    theirs.refresh_from_db()
    assert (failed.status, theirs.status) == (Status.QUEUED, Status.FAILED)
    assert bulk("delete") == ["Deleted 3 documents."]
    assert list(Document.objects.values_list("title", flat=True)) == ["Theirs"]


@pytest.mark.sqlite_pass
def test_tags_are_added_and_removed_on_a_documents_page(db: None, logged_in: LoggedIn) -> None:
    owner, stranger = user_make(), user_make()
    document = _document(owner, "Lease")
    tag_get_or_create(library=Library.objects.personal(owner), owner=owner, name="Home")
    client = logged_in(owner)
    detail = reverse("documents:detail", args=[document.id])
    add = reverse("documents:tag_add", args=[document.id])
    response = client.post(add, {"name": "home"}, follow=True)
    assert response.redirect_chain[-1][0] == detail
    assert [tag.name for tag in document.tags.all()] == ["Home"]
    assert _messages(response) == ["Tagged “Home”."]
    body = response.content.decode()
    assert '<datalist id="tag-names"><option value="Home">' in body
    assert "Remove the tag Home" in body
    response = client.post(add, {"name": "x" * 51}, follow=True)
    assert _messages(response) == ["A tag needs 1 to 50 characters."]
    as_stranger = logged_in(stranger)
    remove = reverse("documents:tag_remove", args=[document.id])
    assert as_stranger.post(add, {"name": "mine"}).status_code == 404
    assert as_stranger.post(remove, {"name": "Home"}).status_code == 404
    client.post(remove, {"name": "HOME"})
    assert not document.tags.exists()


@pytest.mark.sqlite_pass
def test_document_suggestions_are_the_owners_ready_documents_by_title(
    db: None, logged_in: LoggedIn
) -> None:
    owner, other = user_make(), user_make()
    for index in range(12):
        _document(owner, f"Minutes {index:02d}", status=Status.READY)
    _document(owner, "Minutes queued", status=Status.QUEUED)
    _document(other, "Minutes of theirs", status=Status.READY)
    client = logged_in(owner)
    found = client.get(reverse("documents:suggest"), {"q": " minutes "}).json()["documents"]
    assert [row["title"] for row in found] == [f"Minutes {index:02d}" for index in range(10)]
    assert client.get(reverse("documents:suggest"), {"q": "theirs"}).json() == {"documents": []}
    assert (
        len(client.get(reverse("documents:suggest"), {"q": "min\x00utes"}).json()["documents"])
        == 10
    )


@pytest.mark.sqlite_pass
def test_search_filters_by_tag_and_shows_only_chosen_documents(
    db: None, logged_in: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, other = user_make(), user_make()
    chosen = _document(owner, "Chosen", status=Status.READY)
    _document(owner, "Not chosen", status=Status.READY)
    theirs = _document(other, "Theirs", status=Status.READY)
    document_tags_set(document=chosen, names=["Tax"])
    document_tags_set(document=theirs, names=["Private"])
    scopes = []

    def pages_ranked(**kwargs: object) -> Ranking:
        scopes.append(kwargs["document_ids"])
        return Ranking(hits=[], best_score=None)

    monkeypatch.setattr(search_services, "pages_ranked", pages_ranked)
    client = logged_in(owner)
    response = client.get(
        reverse("search:search"), {"q": "rent", "tag": "Tax", "document": [str(chosen.id)]}
    )
    assert scopes == [[chosen.id]]
    body = response.content.decode()
    assert body.count('name="document"') == 1  # the chosen one, as a checkbox in its chip
    assert "Not chosen" not in body
    assert 'name="tag" value="Tax" checked' in body
    # Another person's tag or document is refused like one that does not exist.
    response = client.get(reverse("search:search"), {"q": "rent", "tag": "Private"})
    assert response.context["form"].errors["tag"]
    response = client.get(reverse("search:search"), {"q": "rent", "document": str(theirs.id)})
    assert "Theirs" not in response.content.decode()
    assert len(scopes) == 1


@pytest.mark.sqlite_pass
def test_api_sets_tags_and_filters_documents_and_search_by_them(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, other = user_make(), user_make()
    document = _document(owner, "Deed", status=Status.READY)
    _document(owner, "Other", status=Status.READY)
    theirs = _document(other, "Theirs")
    _token, raw = ApiToken.issue(user=owner, name="script")
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    url = f"/api/documents/{document.id}/tags"
    response = api.put(url, {"tags": ["House", "2024", "house"]}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["tags"] == ["2024", "House"]
    bad = api.put(url, {"tags": ["x" * 51]}, content_type="application/json")
    assert bad.status_code == 400
    put_theirs = api.put(
        f"/api/documents/{theirs.id}/tags", {"tags": ["a"]}, content_type="application/json"
    )
    assert put_theirs.status_code == 404
    listed = api.get("/api/documents", {"tag": "HOUSE"}).json()
    assert [row["title"] for row in listed["documents"]] == ["Deed"]
    assert listed["count"] == 1
    assert api.get("/api/documents", {"tag": "nothing"}).json()["count"] == 0
    scopes = []

    def pages_ranked(**kwargs: object) -> Ranking:
        scopes.append(kwargs["document_ids"])
        return Ranking(hits=[], best_score=None)

    monkeypatch.setattr(search_services, "pages_ranked", pages_ranked)
    assert api.get("/api/search", {"q": "deed", "tag": "house"}).status_code == 200
    assert api.get("/api/search", {"q": "deed"}).status_code == 200
    assert scopes == [[document.id], None]


@pytest.mark.sqlite_pass
def test_admin_lists_tags_and_filters_documents_by_them(db: None, logged_in: LoggedIn) -> None:
    staff = user_make()
    staff.is_staff = staff.is_superuser = True
    staff.save()
    owner = user_make()
    tagged = _document(owner, "Tagged deed")
    _document(owner, "Plain deed")
    document_tags_set(document=tagged, names=["Property"])
    client = logged_in(staff)
    listed = client.get("/admin/documents/document/", {"tags__name": "Property"})
    assert listed.status_code == 200
    assert [document.title for document in listed.context["cl"].result_list] == ["Tagged deed"]
    assert (
        "Property" in client.get(f"/admin/documents/document/{tagged.id}/change/").content.decode()
    )
    tags = client.get("/admin/documents/tag/")
    assert [(tag.name, tag.n_documents) for tag in tags.context["cl"].result_list] == [
        ("Property", 1)
    ]
    tag = Tag.objects.get()
    assert client.get(f"/admin/documents/tag/{tag.pk}/change/").status_code == 200
