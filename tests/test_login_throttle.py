"""Login throttling (django-axes) on the site's login and the admin's: after the failure limit a
username is locked out from that address, with a clear page, even with the right password;
other addresses and other usernames are not; the lockout expires."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessAttemptExpiration
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tests.helpers import PASSWORD, user_make

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.7"
ELSEWHERE = "198.51.100.20"


def _login(url: str, username: str, password: str, address: str = ATTACKER) -> object:
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


def test_a_login_is_locked_out_by_user_and_address_and_the_lockout_expires() -> None:
    user = user_make()
    bystander = user_make()
    url = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _login(url, user.username, "wrong")
        assert response.status_code == 200
        assert "didn't match" in response.content.decode()
    locked = _login(url, user.username, "wrong")
    assert locked.status_code == 429
    # Now even the right password is refused, with a page that says why and for how long.
    locked = _login(url, user.username, PASSWORD)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins" in page
    assert f"failed {settings.AXES_FAILURE_LIMIT} times" in page
    assert "Try again in 15 minutes" in page
    assert "_auth_user_id" not in Client().session

    # By user and address together: the same person from elsewhere, and another person from
    # the attacker's address, log in.
    assert _login(url, user.username, PASSWORD, ELSEWHERE).status_code == 302
    assert _login(url, bystander.username, PASSWORD).status_code == 302

    # DOCDB_LOGIN_LOCKOUT_MINUTES later the pair may try again.
    past = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.filter(username=user.username).update(attempt_time=past)
    AccessAttemptExpiration.objects.filter(access_attempt__username=user.username).update(
        expires_at=past
    )
    assert _login(url, user.username, PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too() -> None:
    staff = get_user_model().objects.create_user("staff-throttled", password=PASSWORD)
    staff.is_staff = True
    staff.save()
    url = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(url, staff.username, "wrong")
    locked = _login(url, staff.username, PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # The site's login shares the count: the pair is locked out there as well.
    assert _login(reverse("login"), staff.username, PASSWORD).status_code == 429


def test_a_success_clears_the_count() -> None:
    user = user_make()
    url = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(url, user.username, "wrong")
    assert _login(url, user.username, PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(url, user.username, "wrong")
    assert _login(url, user.username, PASSWORD).status_code == 302


def _login_via_proxy(url: str, username: str, forwarded: str) -> object:
    client = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    return client.post(url, {"username": username, "password": "wrong"})


def test_behind_a_trusted_proxy_logins_count_by_the_address_the_proxy_saw() -> None:
    user = user_make()
    url = reverse("login")
    # Not trusted (the default): every login through the proxy is the proxy's address, and
    # what the client writes into the header changes nothing.
    for number in range(settings.AXES_FAILURE_LIMIT):
        _login_via_proxy(url, user.username, f"192.0.2.{number}, {ATTACKER}")
    assert _login_via_proxy(url, user.username, ELSEWHERE).status_code == 429

    other = user_make()
    with override_settings(TRUST_X_FORWARDED_FOR=True):
        # Trusted: the address the proxy appended counts, not the ones the client sent before.
        for number in range(settings.AXES_FAILURE_LIMIT):
            _login_via_proxy(url, other.username, f"192.0.2.{number}, {ATTACKER}")
        assert _login_via_proxy(url, other.username, ATTACKER).status_code == 429
        assert _login_via_proxy(url, other.username, ELSEWHERE).status_code == 200


def test_a_wrong_password_keeps_the_username_and_focuses_the_password() -> None:
    user = user_make()
    page = _login(reverse("login"), user.username, "wrong").content.decode()  # type: ignore[attr-defined]
    assert "didn't match" in page
    assert f'name="username" value="{user.username}"' in page
    assert 'autocomplete="current-password" required autofocus' in page
