"""A person in Chromium: log in, upload, watch it become ready, search, open a result."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import REPO_DIR, Stack
from tests.helpers import PASSWORD, UNIQUE_PAGE, UNIQUE_PHRASE, report_pdf, user_make

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

CHROMIUM = os.environ.get("DOCDB_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO_DIR / "test-artifacts" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (make install-test installs it)")
    # Django's live server runs in this process; let its sync ORM calls through.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_login_upload_search_open(
    viewport: str, browser: Browser, live: Stack, live_server: object, tmp_path: Path
) -> None:
    user = user_make()
    base = str(live_server)
    context = browser.new_context(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(30_000)

    page.goto(f"{base}/documents/")
    expect(page).to_have_url(f"{base}/login/?next=/documents/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    _shot(page, f"{viewport}-01-login")
    page.click("button[type=submit]")

    page.goto(f"{base}/documents/upload/")
    page.set_input_files("input[type=file]", str(report_pdf(tmp_path)))
    _shot(page, f"{viewport}-02-upload")
    page.click("form.upload-form button[type=submit]")
    expect(page.locator(".message.success")).to_contain_text("was uploaded and is queued")
    _shot(page, f"{viewport}-03-queued")

    # The list polls the status and reloads once the document is ready.
    expect(page.locator("[data-document-status] .badge")).to_have_text("Ready", timeout=240_000)
    _shot(page, f"{viewport}-04-ready")

    page.click("table.documents a")
    expect(page.locator(".page-grid li")).to_have_count(5)
    _shot(page, f"{viewport}-05-document")

    page.goto(f"{base}/search/")
    page.fill("input[name=q]", UNIQUE_PHRASE)
    page.check("input[name=mode][value=keyword]")
    page.click("form.search-form button[type=submit]")
    first = page.locator(".results li").first
    expect(first).to_contain_text(f"p. {UNIQUE_PAGE}")
    _shot(page, f"{viewport}-06-results")

    first.locator("a").click()
    expect(page.locator(".page-view img")).to_be_visible()
    # The full page image is really there (decoded), not a broken-image icon.
    page.wait_for_function("document.querySelector('.page-view img').naturalWidth > 0")
    expect(page.locator("a[rel=next]")).to_be_visible()
    _shot(page, f"{viewport}-07-page")
    page.click("a[rel=next]")
    expect(page.locator(".muted").first).to_contain_text(f"Page {UNIQUE_PAGE + 1} of 5")
    context.close()
