"""Search, similar pages, similarity maps, rename and live status against the real services."""

import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from docdb.documents.libraries import library_ids_visible
from docdb.documents.models import Document, Status
from docdb.documents.progress import workers_forget
from docdb.search import services as search_services
from docdb.search import views as search_views
from docdb.weaviate_store import SearchMode, client_close, page_multivector
from tests.conftest import LoggedIn, Stack, free_port
from tests.helpers import (
    UNIQUE_PAGE,
    UNIQUE_PHRASE,
    document_wait,
    report_pdf,
    user_make,
)
from tests.pdf_factory import pdf_make

# Views over the same ORM queries the PostgreSQL pass tests: the SQLite pass runs them.
pytestmark = [pytest.mark.timeout(600), pytest.mark.sqlite_pass]

HOSTILE_TEXT = "<script>alert('bamboo')</script> bamboo & steel"


def _upload(client: Client, path: Path) -> Document:
    with path.open("rb") as handle:
        response = client.post(reverse("documents:upload_file"), {"file": handle})
    assert response.status_code == 201, response.content
    return Document.objects.get(id=response.json()["document"]["id"])


def _ready(document: Document) -> Document:
    document = document_wait(document.id)
    assert document.status == Status.READY, document.error
    return document


def _search(client: Client, **params: object) -> object:
    response = client.get(reverse("search:search"), params)
    assert response.status_code == 200
    return response


def _keys(response: object) -> list[tuple[uuid.UUID, int]]:
    return [(r.page.document_id, r.page.number) for r in response.context["results"]]  # type: ignore[attr-defined]


def test_search_modes_filters_snippets_and_more(
    live: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged_in: LoggedIn
) -> None:
    owner = user_make()
    client = logged_in(owner)
    report = _upload(client, report_pdf(tmp_path))
    other = _upload(
        client, pdf_make(tmp_path / "notes.pdf", pages=[[HOSTILE_TEXT], ["Nothing to see"]])
    )
    report, other = _ready(report), _ready(other)
    Document.objects.filter(id=other.id).update(created_at=timezone.now() - timedelta(days=10))

    # Keyword: the phrase's page first, its words marked in a snippet of the page text.
    response = _search(client, q=UNIQUE_PHRASE, mode="keyword")
    assert _keys(response)[0] == (report.id, UNIQUE_PAGE)
    body = response.content.decode()
    assert "<mark>xylophone</mark> <mark>calibration</mark>" in body
    assert " ms" in body

    # Page text is escaped, never markup; only our <mark> is.
    body = _search(client, q="bamboo", mode="keyword").content.decode()
    assert "&lt;script&gt;alert(&#x27;<mark>bamboo</mark>&#x27;)&lt;/script&gt;" in body
    assert "<script>alert" not in body

    # Filters resolve to document ids in Weaviate: by document, and by upload date.
    only_other = _search(client, q="bamboo", mode="keyword", document=str(other.id))
    assert {key[0] for key in _keys(only_other)} == {other.id}
    old = _search(
        client, q="bamboo", mode="hybrid", date_to=str(timezone.localdate() - timedelta(days=5))
    )
    assert {key[0] for key in _keys(old)} == {other.id}
    recent = _search(client, q="bamboo", mode="vector", date_from=str(timezone.localdate()))
    assert {key[0] for key in _keys(recent)} == {report.id}
    assert "filtered" in recent.content.decode()

    # Every mode answers, hybrid at both ends of its balance; vector results carry no snippet.
    for mode, alpha in [("vector", None), ("hybrid", "0"), ("hybrid", "1"), ("keyword", None)]:
        params = {"q": "bamboo strength", "mode": mode} | ({"alpha": alpha} if alpha else {})
        results = _search(client, **params).context["results"]
        assert results, (mode, alpha)
        if mode == "vector":
            assert all(not result.snippet for result in results)

    # "More results": the next page of cards alone, no duplicates, until there are no more.
    monkeypatch.setattr(search_services, "PAGE_SIZE", 3)
    monkeypatch.setattr(search_views, "PAGE_SIZE", 3)
    first = _search(client, q="bamboo", mode=SearchMode.VECTOR)
    assert len(first.context["results"]) == 3 and first.context["more_url"].endswith("page=2")
    second = _search(client, q="bamboo", mode=SearchMode.VECTOR, page=2, partial=1)
    assert b"<html" not in second.content and b"data-results" in second.content
    third = _search(client, q="bamboo", mode=SearchMode.VECTOR, page=3)
    seen = _keys(first) + _keys(second) + _keys(third)
    assert len(seen) == len(set(seen)) == 7
    assert "more_url" not in third.context

    # Someone else cannot aim a filter at these documents.
    stranger = logged_in(user_make())
    response = _search(stranger, q="bamboo", mode="keyword", document=str(report.id))
    assert (
        "results" not in response.context and "Select a valid choice" in response.content.decode()
    )


def test_similar_pages_and_similarity_maps(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner, stranger = user_make(), user_make()
    client, stranger_client = logged_in(owner), logged_in(stranger)
    report = _ready(_upload(client, report_pdf(tmp_path)))
    theirs = _ready(_upload(stranger_client, report_pdf(tmp_path, "theirs.pdf", salt="x")))

    similar = client.get(reverse("search:page_similar", args=[report.id, 2]))
    keys = {(r.page.document_id, r.page.number) for r in similar.context["results"]}
    assert keys == {(report.id, n) for n in (1, 3, 4, 5)}  # itself left out, theirs never in
    assert str(theirs.id) not in similar.content.decode()

    maps = client.get(
        reverse("search:page_maps", args=[report.id, UNIQUE_PAGE]),
        {"q": "Quarterly revenue by region"},
    )
    answer = maps.json()
    assert "error" not in answer, answer
    # A US Letter page: 4 x 4 tiles of 8 x 8 image tokens, as with the real model.
    assert answer["rows"] == answer["cols"] == 32
    # The query's words, without [CLS], [SEP] and the augmentation tokens.
    assert [token["text"] for token in answer["tokens"]] == ["Quarterly", "revenue", "by", "region"]
    for cells in [answer["combined"], *(token["cells"] for token in answer["tokens"])]:
        assert len(cells) == 32 * 32 and min(cells) >= 0 and max(cells) == 1
    # The stranger gets no map of this page, even naming it exactly.
    denied = stranger_client.get(reverse("search:page_maps", args=[report.id, 1]), {"q": "revenue"})
    assert denied.status_code == 404

    # The embedder's layout fits the vectors Weaviate stored for the page.
    page = report.pages.get(number=UNIQUE_PAGE)
    layout = requests.post(
        f"{live.embedder.url}/v1/docdb/image-layout",
        json={"width": page.width, "height": page.height},
        headers={"Authorization": f"Bearer {live.embedder.api_key}"},
        timeout=30,
    ).json()
    stored = page_multivector(
        library_ids=library_ids_visible(user=owner), document_id=report.id, page_number=UNIQUE_PAGE
    )
    assert stored is not None and layout["length"] == len(stored)
    assert (
        page_multivector(
            library_ids=library_ids_visible(user=stranger), document_id=report.id, page_number=1
        )
        is None
    )


def test_query_tokens_are_the_query_embedding_with_its_tokens(live: Stack) -> None:
    url = f"{live.embedder.url}/v1/docdb/query-tokens"
    headers = {"Authorization": f"Bearer {live.embedder.api_key}"}
    assert requests.post(url, json={"input": "revenue"}, timeout=30).status_code == 401
    answer = requests.post(
        url, json={"input": "revenue by region"}, headers=headers, timeout=30
    ).json()
    embedded = requests.post(
        f"{live.embedder.url}/v1/embeddings/embed",
        json={"input": ["revenue by region"], "is_search_query": True},
        headers=headers,
        timeout=30,
    ).json()["embeddings"][0]
    np.testing.assert_allclose(np.asarray(answer["embeddings"]), np.asarray(embedded), atol=1e-5)
    assert len(answer["tokens"]) == len(embedded)
    # [CLS] ... [SEP] around the query and its 10 augmentation tokens, as ModernBERT's do.
    assert answer["tokens"][0] == {"text": "[CLS]", "special": True}
    assert answer["tokens"][-11:] == [{"text": "<end_of_utterance>", "special": True}] * 10 + [
        {"text": "[SEP]", "special": True}
    ]
    too_big = requests.post(
        f"{live.embedder.url}/v1/docdb/image-layout",
        json={"width": 9000, "height": 9000},
        headers=headers,
        timeout=30,
    )
    assert too_big.status_code == 413


def test_the_random_model_banner_tells_people_and_operators_apart(
    live: Stack, logged_in: LoggedIn
) -> None:
    person = logged_in(user_make()).get(reverse("documents:list")).content.decode()
    assert "<strong>Demo mode:</strong> search ranks pages at random" in person
    assert "DOCDB_EMBEDDER_MODEL" not in person
    operator = user_make()
    operator.is_staff = True
    operator.save()
    staff = logged_in(operator).get(reverse("documents:list")).content.decode()
    assert "Demo mode:" in staff and "DOCDB_EMBEDDER_MODEL" in staff


def test_backend_down_and_nothing_indexed_get_clear_messages(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    newcomer = logged_in(user_make())
    response = _search(newcomer, q="anything")
    assert "Nothing is indexed yet" in response.content.decode()

    owner = user_make()
    client = logged_in(owner)
    report = _ready(_upload(client, report_pdf(tmp_path)))
    dead = f"http://127.0.0.1:{free_port()}"
    client_close()
    try:
        with override_settings(WEAVIATE_URL=dead, WEAVIATE_GRPC_PORT=free_port()):
            response = _search(client, q="bamboo", mode="hybrid")
            assert "Search is unavailable" in response.content.decode()
            similar = client.get(reverse("search:page_similar", args=[report.id, 1]))
            assert similar.status_code == 200
            assert "the search index did not answer" in similar.content.decode()
            maps = client.get(reverse("search:page_maps", args=[report.id, 1]), {"q": "bamboo"})
            assert maps.json()["error"].startswith("The search index did not answer")
    finally:
        client_close()
    with override_settings(EMBEDDER_URL=dead):
        response = _search(client, q="bamboo", mode="hybrid")
        assert "Search is unavailable" in response.content.decode()
        maps = client.get(reverse("search:page_maps", args=[report.id, 1]), {"q": "bamboo"})
        assert maps.json()["error"] == "The embedder did not answer. Try again in a moment."


def test_statuses_say_when_no_worker_is_running(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    client = logged_in(owner)
    live.worker.stop()
    workers_forget()
    try:
        document = _upload(client, report_pdf(tmp_path))
        body = client.get(reverse("documents:statuses"), {"id": str(document.id)}).json()
        assert body["worker"]["alive"] is False
        assert "No worker is running" in body["worker"]["message"]
        assert body["documents"][0]["queue_position"] == 1
    finally:
        live.worker_restart()
        workers_forget()
    assert _ready(document).pages_total == 5
    assert (
        client.get(reverse("documents:statuses"), {"id": str(document.id)}).json()["documents"][0][
            "status"
        ]
        == "ready"
    )


def test_rename_changes_titles_in_search_without_reembedding(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    client = logged_in(owner)
    report = _ready(_upload(client, report_pdf(tmp_path)))
    before = page_multivector(
        library_ids=library_ids_visible(user=owner), document_id=report.id, page_number=1
    )
    embedded = live.embedder.health()["counters"]["images_embedded"]  # type: ignore[index]

    response = client.post(
        reverse("documents:rename", args=[report.id]), {"title": "Zeppelin manual"}
    )
    assert response.status_code == 302
    assert Document.objects.get(id=report.id).title == "Zeppelin manual"
    results = _search(client, q="zeppelin", mode="keyword").context["results"]
    assert {r.page.number for r in results} == {1, 2, 3, 4, 5}
    assert results[0].page.document.title == "Zeppelin manual"
    assert live.embedder.health()["counters"]["images_embedded"] == embedded  # type: ignore[index]
    assert (
        page_multivector(
            library_ids=library_ids_visible(user=owner), document_id=report.id, page_number=1
        )
        == before
    )

    with report_pdf(tmp_path).open("rb") as again:
        duplicate = client.post(reverse("documents:upload_file"), {"file": again})
    assert duplicate.status_code == 409
    assert duplicate.json()["duplicate_of"]["title"] == "Zeppelin manual"
