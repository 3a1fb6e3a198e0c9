"""Nobody outside a document's library sees it: every URL and API endpoint, walked as a
stranger and as an anonymous client, leaks none of it; a viewer of the library reads it and
changes nothing; a member removed loses it at once. The URL list is read from the URLconf and
the OpenAPI schema, so a view added later is walked too."""

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from docdb.api.models import ApiToken
from docdb.documents.libraries import library_ids_visible
from docdb.documents.models import Document, Library, Membership, Role, Status
from docdb.documents.services import document_move
from docdb.documents.tags import document_tags_set
from docdb.search.models import QueryImage
from docdb.weaviate_store import SearchMode, pages_count, pages_search
from tests.conftest import LoggedIn, Stack
from tests.helpers import document_wait, report_pdf, user_make
from tests.pdf_factory import pdf_make

pytestmark = pytest.mark.timeout(600)

# Namespaces with their own guards, tested elsewhere: the admin asks for staff.
SKIPPED_NAMESPACES = {"admin", "api"}


def _named_patterns(
    patterns: list[URLPattern | URLResolver], namespace: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace or namespace
            if inner in SKIPPED_NAMESPACES:
                continue
            prefix = (
                f"{pattern.namespace}:" if pattern.namespace else (namespace and f"{namespace}:")
            )
            yield from _named_patterns(pattern.url_patterns, prefix.rstrip(":"))
        elif pattern.name:
            yield (f"{namespace}:{pattern.name}" if namespace else pattern.name), pattern


def _urls_of(document: Document, token: ApiToken, image: QueryImage) -> list[str]:
    """Every named URL, filled with the owner's document, its first page, library, API token,
    an image they searched with, and the owner as a library's member."""
    values: dict[str, object] = {
        "document_id": document.id,
        "library_id": document.library_id,
        "number": 1,
        "token_id": token.pk,
        "image_id": image.id,
        "user_id": document.owner_id,
    }
    urls = []
    for name, pattern in _named_patterns(get_resolver().url_patterns):
        kwargs = {key: values[key] for key in pattern.pattern.regex.groupindex}
        if set(pattern.pattern.regex.groupindex) - set(values):
            pytest.fail(f"{name} takes arguments this test does not know how to fill")
        urls.append(reverse(name, kwargs=kwargs))
    return urls


def _leaks(body: bytes, document: Document) -> bool:
    text = body.decode(errors="replace")
    names = [tag.name for tag in document.tags.all()] + [document.library.name]
    return document.title in text or str(document.id) in text or any(n in text for n in names)


@pytest.fixture
def secret_document(live: Stack, tmp_path: Path, logged_in: LoggedIn) -> Document:
    return secret_document_upload(tmp_path, logged_in)


def secret_document_upload(tmp_path: Path, logged_in: LoggedIn) -> Document:
    """A new person's two-page document, uploaded and ready, titled with a unique secret."""
    owner = user_make()
    name = f"secret-{uuid.uuid4().hex[:12]}"
    path = pdf_make(tmp_path / f"{name}.pdf", pages=[[f"{name} page one"], ["page two"]])
    client = logged_in(owner)
    with path.open("rb") as handle:
        client.post(reverse("documents:upload"), {"file": handle})
    document = Document.objects.get(owner=owner)
    document = document_wait(document.id)
    assert document.status == Status.READY, document.error
    # A name of its own: a page that echoes a typed tag must not look like it shows the title.
    document_tags_set(document=document, names=[f"label-{uuid.uuid4().hex[:12]}"])
    # Its library's name too: no page of anyone else's names it.
    document.library.name = f"library-{uuid.uuid4().hex[:12]}"
    document.library.save(update_fields=["name"])
    return document


def test_no_url_shows_a_document_to_anyone_else(
    secret_document: Document, logged_in: LoggedIn
) -> None:
    stranger_walk(secret_document, logged_in)


def stranger_walk(document: Document, logged_in: LoggedIn) -> None:
    """Every URL, as an anonymous client and as another person: none shows the document.
    (tests/test_storage_s3.py walks it with the files in a bucket too.)"""
    stranger = user_make()
    as_stranger = logged_in(stranger)
    anonymous = Client()
    token, _raw = ApiToken.issue(user=document.owner, name="owner's script")
    image = QueryImage.objects.create(
        owner=document.owner, sha256="0" * 64, jpeg=b"\xff\xd8", width=1, height=1
    )
    urls = _urls_of(document, token, image)
    assert any(str(document.id) in url for url in urls)

    for url in urls:
        for method in ("get", "post"):
            response = getattr(anonymous, method)(url)
            if url not in (reverse("login"), reverse("health")):
                assert response.status_code in (302, 401, 403, 405), (method, url)
                if response.status_code == 302:
                    login_pages = (reverse("login"), reverse("admin:login"))
                    assert response["Location"].startswith(login_pages), (method, url)
            assert not _leaks(response.content, document), (method, url)

            as_stranger.force_login(stranger)  # the walk passes the logout URL too
            response = getattr(as_stranger, method)(url)
            library = reverse("libraries:detail", args=[document.library_id])
            if str(document.id) in url or str(image.id) in url or url.startswith(library):
                assert response.status_code in (403, 404, 405), (method, url, response.status_code)
            assert not _leaks(response.content, document), (method, url)

    for mode in SearchMode:
        # The page echoes the query (the secret title here), so look for the document itself.
        response = as_stranger.get(reverse("search:search"), {"q": document.title, "mode": mode})
        assert not response.context.get("results")
        assert str(document.id) not in response.content.decode()
    response = as_stranger.get(reverse("search:search"), {"image": image.id})
    assert not response.context.get("results")
    # The owner's tag and title, typed by the stranger, find nothing of theirs either (the
    # pages echo what was typed, so look for what they found).
    as_stranger.force_login(stranger)
    tag = document.tags.get().name
    suggest = as_stranger.get(reverse("documents:suggest"), {"q": document.title})
    assert suggest.json() == {"documents": []}
    for params in ({"tag": tag}, {"q": document.title}):
        response = as_stranger.get(reverse("documents:list"), params)
        assert not response.context["page_obj"].object_list, params
        assert str(document.id) not in response.content.decode(), params
    for params in ({"tag": tag}, {"document": str(document.id)}):
        response = as_stranger.get(reverse("search:search"), {"q": "page", **params})
        assert not response.context.get("results"), params
        assert document.title not in response.content.decode(), params
    for action in ("tag", "untag", "rerun", "delete"):
        response = as_stranger.post(
            reverse("documents:bulk"),
            {"document": [str(document.id)], "action": action, "tag": tag},
            follow=True,
        )
        assert not _leaks(response.content, document), action
    # The stranger's posts changed nothing.
    survivor = Document.objects.get(id=document.id)
    assert (survivor.title, survivor.status) == (document.title, Status.READY)
    assert [t.name for t in survivor.tags.all()] == [tag]
    assert not stranger.tags.exists()
    token.refresh_from_db()
    assert token.revoked_at is None


def test_no_api_endpoint_shows_a_document_to_anyone_else(secret_document: Document) -> None:
    document = secret_document
    stranger = user_make()
    out = io.StringIO()
    call_command("create_api_token", stranger.username, stdout=out)
    as_stranger = Client(headers={"Authorization": f"Bearer {out.getvalue().strip()}"})
    anonymous = Client()
    schema = anonymous.get("/api/openapi.json").json()
    for path, operations in schema["paths"].items():
        url = path.replace("{document_id}", str(document.id))
        url = url.replace("{library_id}", str(document.library_id))
        for method in operations:
            params = {"q": "page one", "mode": "keyword"} if "search" in path else {}
            response = getattr(anonymous, method)(url, params)
            assert response.status_code == 401, (method, url)
            response = getattr(as_stranger, method)(url, params)
            assert response.status_code in (200, 400, 404, 422), (method, url)
            if "{library_id}" in path:  # nothing of someone else's library answers
                assert response.status_code != 200, (method, url)
            assert not _leaks(response.content, document), (method, url)
    assert Document.objects.filter(id=document.id).exists()
    assert document.library.memberships.get().user_id == document.owner_id


def test_a_crafted_search_cannot_reach_another_owners_pages(secret_document: Document) -> None:
    """Even naming the other owner's document id, the owner filter inside Weaviate holds."""
    document = secret_document
    stranger = user_make()
    for mode in SearchMode:
        hits = pages_search(
            library_ids=library_ids_visible(user=stranger),
            query=document.title,
            mode=mode,
            limit=50,
            document_id=document.id,
        )
        assert hits == []
    out = io.StringIO()
    call_command("create_api_token", stranger.username, stdout=out)
    api = Client(headers={"Authorization": f"Bearer {out.getvalue().strip()}"})
    response = api.get(
        "/api/search", {"q": document.title, "mode": "keyword", "document_id": str(document.id)}
    )
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_weaviate_and_the_embedder_refuse_requests_without_the_key(live: Stack) -> None:
    import requests

    assert requests.get(f"{live.weaviate.url}/v1/schema", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-key"}
    assert (
        requests.get(f"{live.weaviate.url}/v1/schema", headers=wrong, timeout=10).status_code == 401
    )
    embed = f"{live.embedder.url}/v1/embeddings/embed"
    body = {"input": ["a query"], "is_search_query": True, "model": "ModernVBERT/colmodernvbert"}
    assert requests.post(embed, json=body, timeout=10).status_code == 401
    key = {"Authorization": f"Bearer {live.weaviate.api_key}"}
    assert requests.post(embed, json=body, headers=key, timeout=30).status_code == 200


def test_revoked_tokens_stop_working(db: None) -> None:
    user = user_make()
    out = io.StringIO()
    call_command("create_api_token", user.username, "--name", "laptop", stdout=out)
    api = Client(headers={"Authorization": f"Bearer {out.getvalue().strip()}"})
    assert api.get("/api/documents").status_code == 200
    call_command("revoke_api_tokens", user.username, "--name", "laptop", stdout=io.StringIO())
    assert api.get("/api/documents").status_code == 401


def _shared(document: Document) -> tuple[Library, object]:
    """The document moved into a new shared library of its uploader's, with a viewer member."""
    library = Library.objects.create(name=f"team-{uuid.uuid4().hex[:8]}")
    Membership.objects.create(library=library, user=document.owner, role=Role.OWNER)
    viewer = user_make()
    Membership.objects.create(library=library, user=viewer, role=Role.VIEWER)
    assert document_move(document=document, library=library, user=document.owner)
    return library, viewer


def _state(document: Document) -> tuple[object, ...]:
    survivor = Document.objects.get(id=document.id)
    return (
        survivor.title,
        survivor.status,
        survivor.library_id,
        sorted(tag.name for tag in survivor.tags.all()),
        pages_count(document_id=document.id, library_id=document.library_id),
    )


# Plain ORM filters, the same on both databases: the SQLite pass runs it.
@pytest.mark.sqlite_pass
def test_a_shared_library_is_read_by_its_viewers_changed_by_none_and_unseen_by_others(
    secret_document: Document, logged_in: LoggedIn, tmp_path: Path
) -> None:
    document = secret_document
    library, viewer = _shared(document)
    document.refresh_from_db()
    # A person who is not a member sees nothing of it, anywhere.
    stranger_walk(document, logged_in)

    as_viewer = logged_in(viewer)
    assert as_viewer.get(reverse("documents:detail", args=[document.id])).status_code == 200
    response = as_viewer.get(reverse("search:search"), {"q": document.title, "mode": "keyword"})
    assert [r.page.document_id for r in response.context["results"]][:1] == [document.id]
    before = _state(document)

    # Every URL of the document that changes something refuses, saying why.
    token, _raw = ApiToken.issue(user=document.owner, name="owner's script")
    image = QueryImage.objects.create(
        owner=document.owner, sha256="1" * 64, jpeg=b"\xff\xd8", width=1, height=1
    )
    tag = document.tags.get().name
    form = {"title": "changed", "name": tag, "password": "x", "tag": tag}
    for url in _urls_of(document, token, image):
        if str(document.id) not in url:
            continue
        response = as_viewer.post(url, form)
        assert response.status_code in (403, 405), (url, response.status_code)
        if response.status_code == 403:
            assert "your role there is viewer" in response.content.decode(), url
    for action in ("tag", "untag", "rerun", "delete", "move"):
        response = as_viewer.post(
            reverse("documents:bulk"),
            {"document": [str(document.id)], "action": action, "tag": "x", "library": library.id},
            follow=True,
        )
        warnings = [str(m) for m in response.context["messages"]]
        assert any("your role there is viewer" in m for m in warnings), (action, warnings)
    with report_pdf(tmp_path, "viewer.pdf").open("rb") as handle:
        response = as_viewer.post(
            reverse("documents:upload_file"), {"file": handle, "library": library.id}
        )
    assert response.status_code == 403

    # The API: reads answer, changes are refused with a sentence.
    out = io.StringIO()
    call_command("create_api_token", viewer.username, stdout=out)
    api = Client(headers={"Authorization": f"Bearer {out.getvalue().strip()}"})
    assert api.get(f"/api/documents/{document.id}").json()["library_id"] == library.id
    found = api.get("/api/search", {"q": document.title, "mode": "keyword", "library": library.id})
    assert found.json()["results"][0]["document_id"] == str(document.id)
    schema = api.get("/api/openapi.json").json()
    for path, operations in schema["paths"].items():
        if "{document_id}" not in path:
            continue
        url = path.replace("{document_id}", str(document.id))
        for method in set(operations) - {"get"}:
            response = getattr(api, method)(url, {"tags": ["x"]}, content_type="application/json")
            assert response.status_code == 403, (method, url, response.status_code)
            assert "your role there is viewer" in response.json()["detail"], (method, url)
    assert _state(document) == before

    # Removed, the viewer loses it on their very next request.
    Membership.objects.filter(library=library, user=viewer).delete()
    assert as_viewer.get(reverse("documents:detail", args=[document.id])).status_code == 404
    response = as_viewer.get(reverse("search:search"), {"q": document.title, "mode": "keyword"})
    assert not response.context.get("results")
    assert api.get(f"/api/documents/{document.id}").status_code == 404
    assert api.get("/api/search", {"q": document.title, "mode": "keyword"}).json()["results"] == []
