"""One document per owner and file: a unique constraint holds it when uploads race, the loser
is answered as a duplicate naming the original (409, in the API and the web), and the upload
page asks by checksum before it sends a file."""

import hashlib
import io
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Browser, expect

from docdb.documents import services
from docdb.documents.models import Document
from docdb.documents.services import UploadRejected, document_upload
from tests.conftest import LoggedIn, Stack
from tests.helpers import PASSWORD, report_pdf, user_make

pytestmark = pytest.mark.timeout(600)

RACERS = 5


def _token_for(username: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", username, stdout=out)
    return out.getvalue().strip()


def _race(post: Callable[[], requests.Response]) -> list[requests.Response]:
    """RACERS threads send the same upload at the same moment."""
    start = threading.Barrier(RACERS)
    answers: list[requests.Response] = []

    def racer() -> None:
        start.wait()
        answers.append(post())

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == RACERS
    return answers


def test_simultaneous_uploads_of_one_file_store_one_document(
    live: Stack, live_server: object, tmp_path: Path
) -> None:
    base = str(live_server)
    owner = user_make()

    stored = live.media_dir / "documents"

    def directories() -> set[str]:
        return {path.name for path in stored.iterdir()} if stored.exists() else set()

    before = directories()
    # The API: five requests with the same file.
    pdf = report_pdf(tmp_path, "race.pdf", salt="api").read_bytes()
    token = _token_for(owner.username)
    answers = _race(
        lambda: requests.post(
            f"{base}/api/documents",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("race.pdf", pdf, "application/pdf")},
            timeout=120,
        )
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * (RACERS - 1)
    documents = Document.objects.filter(owner=owner, sha256=hashlib.sha256(pdf).hexdigest())
    assert documents.count() == 1
    original = documents.get()
    for answer in answers:
        if answer.status_code == 409:
            (rejection,) = answer.json()["rejected"]
            assert rejection["duplicate_of"] == str(original.id)
            assert "already uploaded as “race”" in rejection["reason"]
    # Nothing of the losers is left on disk.
    assert directories() - before == {str(original.id)}

    # The upload page's endpoint: five browser tabs with one session.
    pdf = report_pdf(tmp_path, "race.pdf", salt="web").read_bytes()
    client = Client()
    client.force_login(owner)
    csrf = uuid.uuid4().hex  # any 32 letters and digits: the cookie and the header must agree
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf}
    answers = _race(
        lambda: requests.post(
            f"{base}{reverse('documents:upload_file')}",
            headers={"X-CSRFToken": csrf, "Accept": "application/json"},
            cookies=cookies,
            files={"file": ("race.pdf", pdf, "application/pdf")},
            timeout=120,
        )
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * (RACERS - 1)
    original = Document.objects.get(owner=owner, sha256=hashlib.sha256(pdf).hexdigest())
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["duplicate_of"]["id"] == str(original.id)
    assert Document.objects.filter(owner=owner).count() == 2


def test_the_loser_of_a_race_is_answered_as_a_duplicate(
    db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: object
) -> None:
    """The other upload commits between this one's check and its insert: the check saw
    nothing, the constraint refuses the row, and the answer names the winner's document."""
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    owner = user_make()
    pdf = report_pdf(tmp_path).read_bytes()
    winner = document_upload(owner=owner, upload=SimpleUploadedFile("report.pdf", pdf))
    looked_up = []
    real_lookup = services.document_with_checksum

    def lookup_after_the_check(**kwargs: object) -> Document | None:
        looked_up.append(kwargs)
        return None if len(looked_up) == 1 else real_lookup(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services, "document_with_checksum", lookup_after_the_check)
    with pytest.raises(UploadRejected) as rejected:
        document_upload(owner=owner, upload=SimpleUploadedFile("copy.pdf", pdf))
    assert len(looked_up) == 2
    assert rejected.value.duplicate_of == winner
    assert rejected.value.reason == (
        "copy.pdf: this file was already uploaded as “report”. It is in the library “Personal”."
    )
    assert list(Document.objects.filter(owner=owner)) == [winner]
    assert [path.name for path in (tmp_path / "documents").iterdir()] == [str(winner.id)]


def test_the_database_holds_one_document_per_owner_and_checksum(db: None) -> None:
    owner, other = user_make(), user_make()
    sha256 = hashlib.sha256(b"one file").hexdigest()
    fields = {"title": "a", "original_name": "a.pdf", "sha256": sha256}
    Document.objects.create(owner=owner, **fields)
    Document.objects.create(owner=other, **fields)  # another person's copy is theirs
    # Copies stored before the constraint stay, marked.
    Document.objects.create(owner=owner, legacy_duplicate=True, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Document.objects.create(owner=owner, **fields)


def test_the_upload_page_asks_by_checksum_among_the_persons_own_documents(
    db: None, logged_in: LoggedIn, tmp_path: Path, settings: object
) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    owner, stranger = user_make(), user_make()
    pdf = report_pdf(tmp_path).read_bytes()
    document = document_upload(owner=owner, upload=SimpleUploadedFile("report.pdf", pdf))
    url = reverse("documents:checksum")
    sha256 = hashlib.sha256(pdf).hexdigest()
    answer = logged_in(owner).get(url, {"sha256": sha256})
    assert answer.json() == {
        "duplicate_of": {
            "id": str(document.id),
            "title": "report",
            "url": reverse("documents:detail", args=[document.id]),
        }
    }
    assert logged_in(stranger).get(url, {"sha256": sha256}).json() == {"duplicate_of": None}
    assert logged_in(owner).get(url, {"sha256": "x" * 64}).status_code == 400
    assert logged_in(owner).get(url).status_code == 400
    assert Client().get(url, {"sha256": sha256}).status_code == 302  # to the login page

    # The API's twin: the documents list filtered by checksum.
    for user, count in ((owner, 1), (stranger, 0)):
        api = Client(headers={"Authorization": f"Bearer {_token_for(user.username)}"})
        body = api.get("/api/documents", {"sha256": sha256}).json()
        assert body["count"] == count
    assert api.get("/api/documents", {"sha256": "not hex"}).status_code == 422


@pytest.mark.browser
def test_the_browser_finds_a_duplicate_before_sending_it(
    browser: Browser, live: Stack, live_server: object, tmp_path: Path
) -> None:
    base = str(live_server)
    owner = user_make()
    path = report_pdf(tmp_path)
    original = document_upload(
        owner=owner, upload=SimpleUploadedFile("report.pdf", path.read_bytes())
    )
    page = browser.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", owner.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{base}/documents/upload/")
    posts: list[str] = []
    page.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )
    page.set_input_files("input[type=file]", str(path))
    duplicate = page.locator(".upload-item[data-state=duplicate]")
    expect(duplicate).to_contain_text("Already uploaded as “report”")
    expect(duplicate.locator("a")).to_have_attribute("href", f"/documents/{original.id}/")
    assert posts == []  # the file never travelled
    assert Document.objects.filter(owner=owner).count() == 1
    page.close()
