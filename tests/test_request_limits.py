"""Bad requests get a 4xx with a reason: the API answers in JSON whatever DEBUG says, and an
upload over the limit is refused from its Content-Length before its body is read, or stopped
while it streams."""

import io
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from docdb.documents.models import Document
from tests.conftest import LoggedIn, Stack
from tests.helpers import report_pdf, user_make

# Views over the same ORM queries the PostgreSQL pass tests: the SQLite pass runs them.
pytestmark = [pytest.mark.timeout(600), pytest.mark.sqlite_pass]

MIB = 1024**2
GIB = 1024**3
JSON = {"Accept": "application/json"}


def _api_for(username: str) -> Client:
    out = io.StringIO()
    call_command("create_api_token", username, stdout=out)
    return Client(
        headers={"Authorization": f"Bearer {out.getvalue().strip()}"},
        raise_request_exception=False,
    )


def _named(name: str, content: bytes = b"%PDF-1.4 tiny") -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


@pytest.mark.parametrize("debug", [True, False])
def test_the_api_answers_malformed_multipart_with_json_400(db: None, debug: bool) -> None:
    api = _api_for(user_make().username)
    malformed = {
        "no boundary": {"data": b"--x\r\n\r\n", "content_type": "multipart/form-data"},
        "too many files": {"data": {"file": [_named(f"{n}.pdf") for n in range(51)]}},
        "a 1000-character name": {"data": {"file": _named("n" * 1000 + ".pdf")}},
        "a 1000-character extension": {"data": {"file": _named("n." + "x" * 1000)}},
    }
    with override_settings(DEBUG=debug):
        for case, request in malformed.items():
            response = api.post("/api/documents", **request)  # type: ignore[arg-type]
            assert response.status_code == 400, (case, response.content[:300])
            assert response["Content-Type"].startswith("application/json"), case
            assert response.json()["detail"].startswith("Bad request: "), case
    assert not Document.objects.exists()


def test_an_upload_over_the_limit_is_refused_before_its_body_is_read(
    db: None, logged_in: LoggedIn
) -> None:
    """The body announces more than the limit and holds a few bytes: the test client's stream
    fails any read past them, so an answer at all shows that nothing read the body. The limit
    is one file's for the upload page's endpoint, 50 files' where a request may carry 50."""
    user = user_make()
    api = _api_for(user.username)
    web = logged_in(user)
    body = b"--x\r\n"
    multipart = "multipart/form-data; boundary=x"
    over_fifty = str(50 * 200 * MIB + 2 * MIB)
    message = "The upload is larger than the 200.0\xa0MB limit."

    response = api.post("/api/documents", body, multipart, CONTENT_LENGTH=over_fifty)
    assert response.status_code == 413
    assert response.json()["detail"] == message

    response = web.post(reverse("documents:upload"), body, multipart, CONTENT_LENGTH=over_fifty)
    assert response.status_code == 413
    assert "This upload is too large" in response.content.decode()
    assert message in response.content.decode()

    # The upload page's script sends one file a request: a GiB is refused there.
    url = reverse("documents:upload_file")
    response = web.post(url, body, multipart, CONTENT_LENGTH=str(GIB), headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"] == message
    assert not Document.objects.exists()


@override_settings(UPLOAD_MAX_BYTES=100_000)
def test_a_file_over_the_limit_is_stopped_while_it_streams(
    db: None, logged_in: LoggedIn, tmp_path: Path
) -> None:
    """Two small files and one over the limit, in a request within the limit for 50 files."""
    user = user_make()
    small = [report_pdf(tmp_path, f"{n}.pdf", salt=str(n)).read_bytes() for n in range(2)]
    large = b"%PDF-1.4\n" + b"0" * 150_000

    def files() -> list[io.BytesIO]:
        return [_named("a.pdf", small[0]), _named("big.pdf", large), _named("b.pdf", small[1])]

    response = _api_for(user.username).post("/api/documents", {"file": files()})
    assert response.status_code == 413
    assert response.json()["detail"] == "big.pdf: the file is larger than the 97.7\xa0KB limit."

    response = logged_in(user).post(reverse("documents:upload"), {"file": files()})
    assert response.status_code == 413
    assert "big.pdf: the file is larger than the 97.7\xa0KB limit." in response.content.decode()
    assert not Document.objects.exists()


def test_an_upload_without_content_length_is_not_read(live: Stack, live_server: object) -> None:
    """Chunked: the server answers after the first chunk, without waiting for the rest (Django
    reads no body that has no Content-Length)."""
    api_token = io.StringIO()
    call_command("create_api_token", user_make().username, stdout=api_token)
    address = urlsplit(str(live_server))
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(
            b"POST /api/documents HTTP/1.1\r\n"
            + f"Host: {address.netloc}\r\n".encode()
            + f"Authorization: Bearer {api_token.getvalue().strip()}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=x\r\n"
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"10000\r\n"
            + b"0" * 0x10000
            + b"\r\n"
        )
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
    assert time.monotonic() - started < 10
    head = answer.decode(errors="replace")
    assert head.split()[1] == "422", head  # no file arrived
    assert "application/json" in head
    assert not Document.objects.exists()
