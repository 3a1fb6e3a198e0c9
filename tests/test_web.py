"""Web pages without the pipeline: login everywhere, limits and validation at upload."""

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from docdb.documents.models import Document
from tests.conftest import LoggedIn
from tests.helpers import user_make

# Views over the same ORM queries the PostgreSQL pass tests: the SQLite pass runs them.
pytestmark = pytest.mark.sqlite_pass

PAGES = [
    reverse("search:search"),
    reverse("documents:list"),
    reverse("documents:upload"),
    reverse("documents:statuses"),
]


@pytest.mark.parametrize("url", PAGES)
def test_every_page_needs_login(db: None, url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_and_health_are_open(db: None) -> None:
    assert Client().get(reverse("login")).status_code == 200
    assert Client().get(reverse("health")).json() == {"status": "ok"}


def test_forms_are_csrf_protected(db: None, logged_in: LoggedIn) -> None:
    user = user_make()
    client = logged_in(user, enforce_csrf_checks=True)
    response = client.post(reverse("documents:upload"), {})
    assert response.status_code == 403


def test_upload_limits_are_checked_before_anything_is_stored(
    db: None, tmp_path: object, logged_in: LoggedIn
) -> None:
    user = user_make()
    client = logged_in(user)
    from django.core.files.uploadedfile import SimpleUploadedFile

    empty = SimpleUploadedFile("empty.pdf", b"", content_type="application/pdf")
    response = client.post(reverse("documents:upload"), {"file": empty}, follow=True)
    assert "empty.pdf: the file is empty." in response.content.decode()

    with override_settings(UPLOAD_MAX_BYTES=1024):
        big = SimpleUploadedFile("big.pdf", b"%PDF-1.7\n" + b"0" * 2048)
        response = client.post(reverse("documents:upload"), {"file": big}, follow=True)
    assert "big.pdf: the file is larger than the 1.0\xa0KB limit." in response.content.decode()

    named = SimpleUploadedFile("../../etc/<script>alert(1)</script>.pdf", b"GIF89a not a pdf")
    response = client.post(reverse("documents:upload"), {"file": named}, follow=True)
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "this file is not a PDF." in body
    assert Document.objects.count() == 0
