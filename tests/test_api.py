"""The JSON API against the real services: token auth, upload, status, search, delete."""

import io
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from docdb.api.models import ApiToken
from docdb.documents.models import Document, Status
from docdb.weaviate_store import pages_count
from tests.conftest import Stack
from tests.helpers import UNIQUE_PAGE, UNIQUE_PHRASE, document_wait, report_pdf, user_make

# Views over the same ORM queries the PostgreSQL pass tests: the SQLite pass runs them.
pytestmark = [pytest.mark.timeout(600), pytest.mark.sqlite_pass]


def _token_for(username: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", username, stdout=out)
    return out.getvalue().strip()


def _api(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_openapi_is_served_and_documents_every_endpoint(db: None) -> None:
    schema = Client().get("/api/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/documents", "/api/documents/{document_id}", "/api/search"} <= set(paths)
    assert "delete" in paths["/api/documents/{document_id}"]


def test_api_requires_a_valid_unrevoked_token(db: None) -> None:
    user = user_make()
    assert Client().get("/api/documents").status_code == 401
    assert _api("docdb_not-a-token").get("/api/documents").status_code == 401
    raw = _token_for(user.username)
    assert _api(raw).get("/api/documents").status_code == 200
    ApiToken.objects.get(user=user).revoke()
    assert _api(raw).get("/api/documents").status_code == 401


def test_api_upload_status_search_delete(live: Stack, tmp_path: Path) -> None:
    owner = user_make()
    other = user_make()
    api = _api(_token_for(owner.username))
    other_api = _api(_token_for(other.username))

    not_pdf = tmp_path / "notes.pdf"
    not_pdf.write_text("plain text, not a PDF")
    with report_pdf(tmp_path).open("rb") as good, not_pdf.open("rb") as bad:
        response = api.post("/api/documents", {"file": [good, bad]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert [r["reason"] for r in body["rejected"]] == ["notes.pdf: this file is not a PDF."]
    document_id = uuid.UUID(body["documents"][0]["id"])
    assert body["documents"][0]["status"] == Status.QUEUED

    document_wait(document_id)
    status = api.get(f"/api/documents/{document_id}").json()
    assert status["status"] == "ready", status
    assert (status["pages_total"], status["pages_done"], status["error"]) == (5, 5, "")

    search = api.get("/api/search", {"q": UNIQUE_PHRASE, "mode": "keyword", "limit": 3}).json()
    first = search["results"][0]
    assert (first["document_id"], first["page_number"]) == (str(document_id), UNIQUE_PAGE)
    assert first["title"] == "report"
    assert Client().get(first["thumbnail_url"]).status_code == 302  # the login page, not the image
    for mode in ("vector", "hybrid"):
        results = api.get("/api/search", {"q": "bamboo", "mode": mode}).json()["results"]
        assert {r["document_id"] for r in results} == {str(document_id)}
    assert api.get("/api/search", {"q": "  "}).status_code == 400
    assert api.get("/api/search", {"q": "x", "mode": "psychic"}).status_code == 422

    # Another user's token sees nothing of it.
    assert other_api.get(f"/api/documents/{document_id}").status_code == 404
    assert other_api.delete(f"/api/documents/{document_id}").status_code == 404
    assert (
        other_api.get("/api/search", {"q": UNIQUE_PHRASE, "mode": "keyword"}).json()["results"]
        == []
    )
    assert other_api.get("/api/documents").json()["count"] == 0

    assert api.delete(f"/api/documents/{document_id}").status_code == 204
    assert api.get(f"/api/documents/{document_id}").status_code == 404
    assert not Document.objects.filter(id=document_id).exists()
    assert pages_count(owner_id=owner.pk, document_id=document_id) == 0


def test_cancel_stops_a_waiting_document_and_says_when_it_cannot(db: None) -> None:
    owner = user_make()
    document = Document.objects.create(
        owner=owner, title="waiting", original_name="waiting.pdf", sha256=uuid.uuid4().hex
    )
    url = f"/api/documents/{document.id}/cancel"
    assert _api(_token_for(user_make().username)).post(url).status_code == 404
    api = _api(_token_for(owner.username))
    listed = api.get("/api/documents").json()["documents"][0]
    assert (listed["phase"], listed["queue_position"], listed["waiting_behind"]) == (
        "queued",
        1,
        0,
    )
    response = api.post(url)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["phase"]) == ("cancelled", "cancelled")
    assert api.post(url).status_code == 409
    assert Document.objects.get(id=document.id).status == Status.CANCELLED
