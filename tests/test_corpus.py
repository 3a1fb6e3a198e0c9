"""The real papers of the shared corpus through the whole pipeline (group `corpus`)."""

from pathlib import Path

import pytest
from django.urls import reverse

from docdb.documents.models import Document, Status
from docdb.weaviate_store import pages_count
from tests.conftest import LoggedIn, Stack
from tests.helpers import document_wait, user_make

pytestmark = [pytest.mark.corpus, pytest.mark.timeout(900)]


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
