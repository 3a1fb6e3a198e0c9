"""Search by image: a screenshot of a page, chosen or pasted on the search page or sent to the
API, is embedded as a page is and finds that page first; the image is kept for "More results"
and links, only for the person who sent it; files that are not images are refused with the
reason."""

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image
from playwright.sync_api import Browser, expect

from docdb.documents import services
from docdb.documents.models import Document, Status
from docdb.search import query_images
from docdb.search.models import QueryImage
from tests.conftest import REPO_DIR, LoggedIn, Stack
from tests.helpers import PASSWORD, document_stored, document_wait, user_make
from tests.pdf_factory import pdf_make
from tests.test_api import _api, _token_for

pytestmark = [pytest.mark.timeout(600), pytest.mark.sqlite_pass]

SCREENSHOTS = REPO_DIR / "test-artifacts" / "screenshots"
PAGES = [
    ["Bamboo tensile strength", "Fibres of culm tested under load."],
    ["Quarterly revenue by region", "North 12 South 9 East 14 West 7"],
    ["Migratory birds of the Baltic", "Cranes, geese and swans in autumn."],
    ["Tidal energy prototypes", "Turbines moored in a fast channel."],
]
WANTED = 3


def _indexed(owner: Any, directory: Path) -> Document:
    path = pdf_make(directory / f"atlas-{uuid.uuid4().hex[:6]}.pdf", pages=PAGES, title="Atlas")
    document = document_stored(owner, path)
    services.document_queue(document_id=document.id)
    assert document_wait(document.id).status == Status.READY
    return document


def _screenshot(client: Client, document: Document, number: int) -> bytes:
    """The page as a person would capture it: its image, saved as a PNG."""
    response = client.get(reverse("documents:page_image", args=[document.id, number]), follow=True)
    assert response.status_code == 200
    data = (
        b"".join(response.streaming_content)  # type: ignore[attr-defined]
        if response.streaming
        else response.content
    )
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def test_a_screenshot_of_a_page_finds_it_first_for_its_owner_only(
    live: Stack, logged_in: LoggedIn, tmp_path: Path
) -> None:
    owner, other = user_make(), user_make()
    document = _indexed(owner, tmp_path)
    _indexed(other, tmp_path)  # the same pages, someone else's: never among the owner's results
    client = logged_in(owner)
    png = _screenshot(client, document, WANTED)

    response = client.post(reverse("search:image_search"), {"image": _upload("shot.png", png)})
    assert response.status_code == 302
    image = QueryImage.objects.get(owner=owner)
    assert response["Location"] == f"{reverse('search:search')}?image={image.id}"
    page = client.get(response["Location"])
    results = page.context["results"]
    assert (results[0].page.document_id, results[0].page.number) == (document.id, WANTED)
    assert {result.page.document.owner_id for result in results} == {owner.pk}
    content = page.content.decode()
    assert "like your image" in content
    thumb = reverse("search:query_image", args=[image.id])
    assert thumb in content
    shown = client.get(thumb)
    assert (shown.status_code, shown["Content-Type"]) == (200, "image/jpeg")

    # A result's page leads back to the results of the image.
    opened = client.get(reverse("documents:page", args=[document.id, WANTED]), {"image": image.id})
    assert "Results for your image" in opened.content.decode()

    # The same file again is the stored image: not embedded twice.
    again = client.post(reverse("search:image_search"), {"image": _upload("again.png", png)})
    assert again["Location"].endswith(f"image={image.id}")
    assert QueryImage.objects.filter(owner=owner).count() == 1

    # Filters apply to the image; words typed over it are a search by words.
    filtered = client.get(reverse("search:search"), {"image": image.id, "document": document.id})
    assert {r.page.document_id for r in filtered.context["results"]} == {document.id}
    words = client.get(reverse("search:search"), {"image": image.id, "q": "tidal turbines"})
    assert words.context["criteria"].image is None

    # Someone else neither sees the image nor searches with it.
    stranger = logged_in(other)
    assert stranger.get(thumb).status_code == 404
    refused = stranger.get(reverse("search:search"), {"image": image.id})
    assert "results" not in refused.context
    assert "Search with the image again" in refused.content.decode()

    api = _api(_token_for(owner.username))
    answer = api.post("/api/search/image", {"file": _upload("shot.png", png)})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["image_id"] == str(image.id)
    first = body["results"][0]
    assert (first["document_id"], first["page_number"]) == (str(document.id), WANTED)
    again_api = api.get("/api/search", {"image": body["image_id"], "limit": 2}).json()
    assert again_api["results"][0]["page_number"] == WANTED
    other_api = _api(_token_for(other.username))
    assert other_api.get("/api/search", {"image": body["image_id"]}).status_code == 400


def _transparent_png() -> bytes:
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _sideways_jpeg() -> bytes:
    image = Image.new("RGB", (60, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def test_images_are_read_upright_on_white_and_at_most_the_query_size() -> None:
    transparent = query_images._image_read(_transparent_png())
    assert transparent.getpixel((0, 0)) == (255, 255, 255)
    assert query_images._image_read(_sideways_jpeg()).size == (20, 60)
    large = io.BytesIO()
    Image.new("RGB", (3000, 1500), "white").save(large, format="PNG")
    assert query_images._image_read(large.getvalue()).size == (1024, 512)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.png", b"", "The file is empty"),
        ("paper.pdf", b"%PDF-1.4\n%%EOF\n", "not an image DocDB can read"),
        ("cut.png", _transparent_png()[:60], "damaged"),
        ("huge.png", b"\x89PNG" + bytes(query_images.MAX_BYTES), "images up to 20 MB"),
    ],
)
def test_files_that_are_not_usable_images_are_refused_with_the_reason(
    db: None, logged_in: LoggedIn, name: str, data: bytes, reason: str
) -> None:
    client = logged_in(user_make())
    response = client.post(reverse("search:image_search"), {"image": _upload(name, data)})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not QueryImage.objects.exists()


@pytest.mark.browser
def test_a_person_searches_with_a_screenshot_at_desktop_and_phone_widths(
    browser: Browser, live: Stack, live_server: object, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    document = _indexed(owner, tmp_path)
    screenshot = tmp_path / "screenshot.png"
    screenshot.write_bytes(_screenshot(logged_in(owner), document, WANTED))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for viewport, size in {"desktop": (1280, 860), "phone": (390, 844)}.items():
        context = browser.new_context(viewport={"width": size[0], "height": size[1]})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{live_server}/login/")
        page.fill("input[name=username]", owner.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{live_server}/search/")
        page.screenshot(path=str(SCREENSHOTS / f"{viewport}-image-search-start.png"))
        # Choosing the file sends it: no second button to press.
        page.set_input_files("[data-image-input]", str(screenshot))
        # Embedding the image takes a moment on a busy CPU.
        expect(page.locator(".query-thumb")).to_be_visible(timeout=60_000)
        first = page.locator("[data-results] > li a").first
        assert f"/{document.id}/pages/{WANTED}/" in (first.get_attribute("href") or "")
        expect(page.locator("[data-summary]")).to_contain_text("like your image")
        page.screenshot(path=str(SCREENSHOTS / f"{viewport}-image-search-results.png"))
        context.close()
