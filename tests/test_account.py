"""A person's account page: their own API tokens (created, shown once, revoked) and password."""

import pytest
from django.test import Client
from django.urls import reverse

from docdb.api.models import ApiToken, token_hash
from tests.conftest import LoggedIn
from tests.helpers import PASSWORD, user_make

# Views over the same ORM queries the PostgreSQL pass tests: the SQLite pass runs them.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_pass]


def _api(raw: str) -> int:
    return Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/documents").status_code


def _login(username: str, password: str) -> int:
    # Through the login view: the login throttle (django-axes) needs the request.
    response = Client().post(reverse("login"), {"username": username, "password": password})
    return response.status_code


def test_a_person_creates_uses_and_revokes_their_own_token(logged_in: LoggedIn) -> None:
    owner = user_make()
    client = logged_in(owner)
    assert client.get(reverse("account:account")).status_code == 200
    created = client.post(reverse("account:token_create"), {"name": "  nightly   import "})
    assert created.status_code == 201
    assert created.headers["Cache-Control"].startswith("max-age=0")
    raw = created.context["new_token"]
    page = created.content.decode()
    assert raw in page and "shown only this once" in page and "nightly import" in page
    token = ApiToken.objects.get(user=owner)
    assert token.name == "nightly import" and token.key_hash == token_hash(raw)
    assert _api(raw) == 200
    # Never shown again.
    assert raw not in client.get(reverse("account:account")).content.decode()

    revoked = client.post(reverse("account:token_revoke", args=[token.pk]), follow=True)
    assert "is revoked" in revoked.content.decode()
    assert _api(raw) == 401


def test_tokens_of_others_are_neither_listed_nor_revocable(logged_in: LoggedIn) -> None:
    owner, stranger = user_make(), user_make()
    theirs, raw = ApiToken.issue(user=stranger, name="their secret script")
    client = logged_in(owner)
    assert "their secret script" not in client.get(reverse("account:account")).content.decode()
    assert client.post(reverse("account:token_revoke", args=[theirs.pk])).status_code == 404
    assert _api(raw) == 200
    # GET does not revoke, and a name is needed.
    assert client.get(reverse("account:token_revoke", args=[theirs.pk])).status_code == 405
    empty = client.post(reverse("account:token_create"), {"name": "  "})
    assert empty.status_code == 400 and "Give the token a name" in empty.content.decode()
    assert not ApiToken.objects.filter(user=owner).exists()


def test_account_pages_need_a_login() -> None:
    for name in ("account:account", "account:password_change"):
        response = Client().get(reverse(name))
        assert response.status_code == 302 and response.headers["Location"].startswith("/login/")
    assert Client().post(reverse("account:token_create"), {"name": "x"}).status_code == 302


def test_a_person_changes_their_password(logged_in: LoggedIn) -> None:
    owner = user_make()
    client = logged_in(owner)
    url = reverse("account:password_change")
    wrong = client.post(
        url, {"old_password": "nope", "new_password1": "a", "new_password2": "b"}
    ).content.decode()
    assert "Your old password was entered incorrectly" in wrong
    new = "a much longer pass phrase 42"
    done = client.post(
        url, {"old_password": PASSWORD, "new_password1": new, "new_password2": new}, follow=True
    )
    assert "Password changed" in done.content.decode()
    # Still logged in here; the new password logs in elsewhere, the old one no longer does.
    assert client.get(reverse("account:account")).status_code == 200
    assert _login(owner.username, new) == 302
    assert _login(owner.username, PASSWORD) == 200  # the form again, with its error
