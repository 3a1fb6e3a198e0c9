"""A person in Chromium, at a desktop and a phone width: upload by drag and drop and watch the
documents get ready, manage them, search in every mode with filters, read a page with its
similar pages and similarity maps. Screenshots land in test-artifacts/screenshots/.
"""

import base64
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from docdb.documents.models import Document, Status
from docdb.documents.progress import workers_forget
from docdb.documents.services import document_upload
from docdb.search import services as search_services
from docdb.search import views as search_views
from tests.conftest import REPO_DIR, Stack
from tests.helpers import (
    PASSWORD,
    UNIQUE_PAGE,
    UNIQUE_PHRASE,
    document_wait,
    page_wait,
    report_pdf,
    user_make,
)
from tests.pdf_factory import file_make_not_pdf, pdf_make

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

SCREENSHOTS = REPO_DIR / "test-artifacts" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
READY_TIMEOUT_MS = 240_000
NOTES_PAGES = [["Field notes on bamboo", "Bamboo bends but does not break."], ["Sketches"]]


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _logged_in_page(browser: Browser, viewport: str, base: str, username: str) -> Page:
    context = browser.new_context(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/documents/")
    return page


def _drop(page: Page, selector: str, files: list[Path]) -> None:
    """Drop files on an element the way a file manager does: a drop event with a DataTransfer."""
    payload = [
        {"name": path.name, "data": base64.b64encode(path.read_bytes()).decode()} for path in files
    ]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], file.name, { type: "application/pdf" }));
            }
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def _upload_directly(owner: object, path: Path) -> Document:
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
    document = document_wait(document_upload(owner=owner, upload=upload).id)  # type: ignore[arg-type]
    assert document.status == Status.READY, document.error
    return document


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_drop_upload_watch_and_manage(
    viewport: str, browser: Browser, live: Stack, live_server: object, tmp_path: Path
) -> None:
    user = user_make()
    base = str(live_server)
    page = _logged_in_page(browser, viewport, base, user.username)
    _shot(page, f"{viewport}-01-documents-empty")

    page.goto(f"{base}/documents/upload/")
    _shot(page, f"{viewport}-02-upload")
    page.evaluate("window.notReloaded = true")
    report = report_pdf(tmp_path)
    notes = pdf_make(tmp_path / "field notes.pdf", pages=NOTES_PAGES)
    hostile = file_make_not_pdf(tmp_path / "invoice.pdf")
    locked = pdf_make(tmp_path / "locked.pdf", pages=[["secret"]], user_password="s3cret")
    _drop(page, "[data-dropzone]", [report, notes, hostile, locked])

    items = page.locator(".upload-item")
    expect(items).to_have_count(4)
    rejected = items.filter(has_text="invoice.pdf")
    expect(rejected).to_contain_text("this file is not a PDF.")
    # Each accepted file gets its live status: queued or processing, then ready (or failed).
    expect(page.locator(".upload-item [data-document-status]")).to_have_count(3)
    _shot(page, f"{viewport}-03-upload-progress")
    for title in ("report", "field notes"):
        item = items.filter(has_text=title)
        expect(item.locator(".badge")).to_have_text("Ready", timeout=READY_TIMEOUT_MS)
    expect(items.filter(has_text="report")).to_contain_text("5 pages")
    # A protected file fails with the reason; Retry cannot help it, its password can.
    failed = items.filter(has_text="locked")
    expect(failed).to_contain_text("This PDF is password-protected.", timeout=READY_TIMEOUT_MS)
    assert page.evaluate("window.notReloaded") is True  # live, not by reloading
    _shot(page, f"{viewport}-04-upload-ready")
    expect(failed.locator("button:has-text('Retry')")).to_have_count(0)
    failed.locator("[data-unlock-link]").click()
    page.locator("#unlock input[name=password]").fill("s3cret")
    page.locator("#unlock button").click()
    expect(page.locator(".status-line .badge")).to_have_text("Ready", timeout=READY_TIMEOUT_MS)
    expect(page.locator(".page-grid img")).to_have_count(1)
    page.goto(f"{base}/documents/upload/")

    # The same file again is recognised, and the person is told which document it is.
    _drop(page, "[data-dropzone]", [report])
    duplicate = page.locator(".upload-item[data-state=duplicate]")
    expect(duplicate).to_contain_text("Already uploaded as “report”")
    expect(duplicate.locator("a")).to_have_attribute("href", f"/documents/{_id_of('report')}/")
    _shot(page, f"{viewport}-05-duplicate")

    # The list: thumbnails, sorting, filtering, renaming, deleting with confirmation.
    page.goto(f"{base}/documents/")
    rows = page.locator("tr[data-document-row]")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="report").locator(".thumb-cell img")).to_be_visible()
    # Desktop sorts by its column headers, a phone (no table header) with a menu.
    if viewport == "desktop":
        page.click("th.sortable a:has-text('Title')")
        expect(rows.first).to_contain_text("field notes")
        page.click("th.sortable a:has-text('Title')")
    else:
        page.select_option("select[name=sort]", "title")
        expect(rows.first).to_contain_text("field notes")
        page.select_option("select[name=sort]", "-title")
    expect(rows.first).to_contain_text("report")
    # The protected file was unlocked: all three are ready, none failed.
    page.select_option("select[name=status]", "failed")
    expect(page.locator(".empty")).to_contain_text("No documents match the status")
    page.select_option("select[name=status]", "ready")
    expect(rows).to_have_count(3)
    _shot(page, f"{viewport}-06-documents")

    row = rows.filter(has_text="field notes")
    row.locator("details.menu summary").click()
    row.locator("input[name=title]").fill("Bamboo field notes")
    _shot(page, f"{viewport}-07-rename")
    row.locator("button:has-text('Rename')").click()
    expect(page.locator(".message.success")).to_have_text("Renamed to “Bamboo field notes”.")
    row = rows.filter(has_text="Bamboo field notes")
    row.locator("details.menu summary").click()
    row.locator("a:has-text('Delete')").click()
    expect(page.locator("h1")).to_have_text("Delete “Bamboo field notes”?")
    _shot(page, f"{viewport}-08-delete-confirm")
    page.click("button:has-text('Delete')")
    expect(page.locator(".message.success")).to_contain_text("was deleted")
    expect(rows).to_have_count(2)
    expect(page.locator("table.documents")).not_to_contain_text("field notes")

    # The document: its pages as thumbnails, and a search within it.
    rows.filter(has_text="report").locator("a.doc-title").click()
    expect(page.locator(".page-grid li")).to_have_count(5)
    page_wait(
        page,
        "Array.from(document.querySelectorAll('.page-grid img')).every((i) => i.naturalWidth > 0)",
    )
    _shot(page, f"{viewport}-09-document")
    page.fill(".search-form.compact input[name=q]", UNIQUE_PHRASE)
    page.select_option(".search-form.compact select[name=mode]", "keyword")
    page.click(".search-form.compact button")
    expect(page.locator(".results li").first).to_contain_text(f"p. {UNIQUE_PAGE}")
    expect(page.locator(".result-summary")).to_contain_text("filtered")
    page.context.close()


def _id_of(title: str) -> uuid.UUID:
    return Document.objects.get(title=title).id


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_search_modes_filters_page_view_similar_and_maps(
    viewport: str,
    browser: Browser,
    live: Stack,
    live_server: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = user_make()
    report = _upload_directly(user, report_pdf(tmp_path))
    notes = _upload_directly(user, pdf_make(tmp_path / "notes.pdf", pages=NOTES_PAGES))
    Document.objects.filter(id=notes.id).update(created_at=timezone.now() - timedelta(days=30))
    # Three cards a page, so seven pages need "More results" (the live server is this process).
    monkeypatch.setattr(search_services, "PAGE_SIZE", 3)
    monkeypatch.setattr(search_views, "PAGE_SIZE", 3)
    base = str(live_server)
    page = _logged_in_page(browser, viewport, base, user.username)

    page.goto(f"{base}/search/")
    page.check("input[name=mode][value=keyword]", force=True)
    page.locator("body").click(position={"x": 5, "y": 200})
    page.keyboard.press("/")
    expect(page.locator("[data-search-input]")).to_be_focused()
    page.keyboard.type(UNIQUE_PHRASE)
    page.keyboard.press("Enter")
    first = page.locator(".results li").first
    expect(first).to_contain_text(f"p. {UNIQUE_PAGE}")
    expect(first.locator(".snippet mark").first).to_have_text("xylophone")
    expect(page.locator(".result-summary")).to_contain_text(" ms")
    # The sharp thumbnail has replaced its blurred placeholder (faded in completely).
    page_wait(
        page, "getComputedStyle(document.querySelector('.results img.sharp')).opacity === '1'"
    )
    _shot(page, f"{viewport}-10-search-keyword")

    # Switching mode searches again; hybrid shows its balance control.
    page.locator(".segmented label:has-text('Hybrid')").click()
    page.wait_for_url(re.compile("mode=hybrid"))
    expect(page.locator("[data-alpha]")).to_be_visible()
    expect(page.locator(".results li").first).to_be_visible()
    page.locator("[data-alpha] input").evaluate(
        """(range) => {
            range.value = "0.8";
            range.dispatchEvent(new Event("input", { bubbles: true }));
            range.dispatchEvent(new Event("change", { bubbles: true }));
        }"""
    )
    page.wait_for_url(re.compile(r"alpha=0\.8"))
    expect(page.locator("[data-alpha-value]")).to_have_text("0.80")
    expect(page.locator(".results li").first).to_be_visible()
    _shot(page, f"{viewport}-11-search-hybrid")

    # Arrow keys move through the modes without searching at each step; Enter searches.
    url = page.url
    page.focus("input[name=mode][value=hybrid]")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("input[name=mode][value=vector]")).to_be_checked()
    expect(page.locator("[data-alpha]")).to_be_hidden()
    page.wait_for_timeout(300)
    assert page.url == url
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("mode=vector"))
    expect(page.locator("[data-alpha]")).to_be_hidden()
    page.fill("[data-search-input]", "bamboo")
    page.keyboard.press("Enter")
    expect(page.locator(".results > li")).to_have_count(3)
    page.focus("[data-more-link]")
    page.keyboard.press("Enter")
    expect(page.locator(".results > li")).to_have_count(6)
    # Focus moves on to the first new result, not back to the top of the page.
    expect(page.locator(".results > li").nth(3).locator("a").first).to_be_focused()
    page.click("[data-more-link]")
    expect(page.locator(".results > li")).to_have_count(7)
    expect(page.locator("[data-more]")).to_contain_text("That is every match.")
    _shot(page, f"{viewport}-12-search-semantic-more")

    # Filters: one document, then an upload date range that only the older one is in.
    page.click(".filters summary")
    page.fill("[data-doc-input]", "note")
    page.click("[data-doc-suggestions] [role=option]:has-text('notes')")
    page.click("button:has-text('Apply filters')")
    expect(page.locator(".results > li")).to_have_count(2)
    for card in page.locator(".result-title").all():
        expect(card).to_have_text("notes")
    page.click(f"[data-doc-chip]:has(input[value='{notes.id}']) [data-doc-remove]")
    page.fill("input[name=date_to]", str(timezone.localdate() - timedelta(days=7)))
    page.click("button:has-text('Apply filters')")
    expect(page.locator(".results > li")).to_have_count(2)
    _shot(page, f"{viewport}-13-search-filtered")
    page.check("input[name=mode][value=keyword]", force=True)
    page.wait_for_url(re.compile("mode=keyword"))
    page.fill("input[name=date_from]", str(timezone.localdate() - timedelta(days=3)))
    page.fill("input[name=date_to]", str(timezone.localdate()))
    page.fill("[data-search-input]", "zzzz")
    page.click("button:has-text('Apply filters')")
    expect(page.locator(".empty")).to_contain_text("No pages match “zzzz” with these filters")
    _shot(page, f"{viewport}-14-search-empty")

    # A query as long as the form keeps (500 characters, one word of them very long) wraps in
    # the summary line and in the empty answer instead of widening the page.
    long_word = "bamboo" * 70
    for query in (f"{UNIQUE_PHRASE} {long_word}", f"zzzz {long_word}"):
        page.goto(f"{base}/search/?q={query.replace(' ', '+')}&mode=keyword")
        expect(page.locator(".result-summary, .empty").first).to_contain_text(long_word[:60])
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # A result opens the page large, with similar pages and similarity maps.
    page.goto(f"{base}/search/?q={UNIQUE_PHRASE.replace(' ', '+')}&mode=keyword")
    page.locator(".results li a").first.click()
    expect(page.locator("[data-page-label]")).to_have_text(f"Page {UNIQUE_PAGE} of 5")
    page_wait(page, "document.querySelector('.page-frame img').naturalWidth > 0")
    expect(page.locator("[data-token-chips] button").first).to_be_visible()
    # The page image starts on the first screen, on a phone too.
    top = page.evaluate("document.querySelector('.page-frame img').getBoundingClientRect().top")
    assert top < VIEWPORTS[viewport]["height"] * 0.7, top
    similar = page.locator(".similar-list li")
    expect(similar.first).to_be_visible()
    expect(similar).to_have_count(6)  # every other page of both documents, never itself
    itself = f".similar-list a[href='/documents/{report.id}/pages/{UNIQUE_PAGE}/']"
    expect(page.locator(itself)).to_have_count(0)
    chips = page.locator("[data-token-chips] button")
    expect(chips.first).to_have_text("Off")
    heatmap = page.locator("[data-heatmap]")
    expect(heatmap).to_be_hidden()
    page.click("[data-token-chips] button:has-text('All tokens')")
    expect(heatmap).to_be_visible()
    _shot(page, f"{viewport}-15-page-map-all")
    token = chips.nth(2)
    token.click()
    expect(token).to_have_attribute("aria-pressed", "true")
    expect(heatmap).to_be_visible()
    expect(page.locator("[data-legend]")).to_be_visible()
    _shot(page, f"{viewport}-16-page-map-token")
    # Scrolled down the page, the chips and the legend stay in view.
    page.mouse.wheel(0, 600)
    page_wait(page, "window.scrollY > 200")
    assert page.evaluate(
        "(() => { const r = document.querySelector('[data-token-chips]').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; })()"
    )
    page.screenshot(path=str(SCREENSHOTS / f"{viewport}-16b-page-map-scrolled.png"))
    # The next page keeps the token picked for this query, and so does coming back.
    picked = token.inner_text()
    page.click("a[rel=next]")
    expect(page.locator("[data-page-label]")).to_have_text(f"Page {UNIQUE_PAGE + 1} of 5")
    expect(page.locator("[data-token-chips] button[aria-pressed=true]")).to_have_text(picked)
    expect(heatmap).to_be_visible()
    page.click("a[rel=prev]")
    expect(page.locator("[data-page-label]")).to_have_text(f"Page {UNIQUE_PAGE} of 5")
    token = page.locator("[data-token-chips] button[aria-pressed=true]")
    expect(token).to_have_text(picked)
    chips.first.click()
    expect(heatmap).to_be_hidden()

    # A typed query maps too; download and open-at-page point at this page.
    page.fill("#maps-q", "revenue by region")
    page.click(".maps-query button")
    expect(page.locator("[data-token-chips] button:has-text('region')")).to_be_visible()
    expect(page.locator("[data-download]")).to_have_attribute(
        "href", f"/documents/{report.id}/pages/{UNIQUE_PAGE}/image/?download=1"
    )
    with page.expect_download() as download:
        page.click("[data-download]")
    assert download.value.suggested_filename == f"report - page {UNIQUE_PAGE}.jpg"
    expect(page.locator("a:has-text('Open PDF at this page')")).to_have_attribute(
        "href", f"/documents/{report.id}/file/#page={UNIQUE_PAGE}"
    )

    # Previous and next, by button and by arrow key; a similar page opens itself.
    page.click("a[rel=next]")
    expect(page.locator("[data-page-label]")).to_have_text(f"Page {UNIQUE_PAGE + 1} of 5")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("ArrowLeft")
    expect(page.locator("[data-page-label]")).to_have_text(f"Page {UNIQUE_PAGE} of 5")
    page.locator(".similar-list a").filter(has_text="notes").first.click()
    expect(page.locator("h1")).to_have_text("notes")
    _shot(page, f"{viewport}-17-similar-page")
    page.context.close()


def test_upload_page_says_when_no_worker_runs(
    browser: Browser, live: Stack, live_server: object, tmp_path: Path
) -> None:
    user = user_make()
    base = str(live_server)
    page = _logged_in_page(browser, "desktop", base, user.username)
    live.worker.stop()
    workers_forget()
    try:
        page.goto(f"{base}/documents/upload/")
        _drop(page, "[data-dropzone]", [report_pdf(tmp_path)])
        warning = page.locator("[data-worker-warning]")
        expect(warning).to_contain_text("No worker is running")
        item = page.locator(".upload-item")
        expect(item).to_contain_text("next in line")
        expect(item.locator("[data-no-worker]")).to_have_text("No worker is running.")
        _shot(page, "desktop-18-no-worker")
    finally:
        live.worker_restart()
        workers_forget()
    expect(page.locator(".upload-item .badge")).to_have_text("Ready", timeout=READY_TIMEOUT_MS)
    expect(page.locator("[data-worker-warning]")).to_be_hidden()
    page.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_waiting_documents_say_why_can_be_cancelled_and_announce_when_ready(
    viewport: str, browser: Browser, live: Stack, live_server: object, tmp_path: Path
) -> None:
    user = user_make()
    base = str(live_server)
    live.worker.stop()
    workers_forget()
    try:
        first, second = (
            document_upload(
                owner=user,
                upload=SimpleUploadedFile(path.name, path.read_bytes(), "application/pdf"),
            )
            for path in (report_pdf(tmp_path), pdf_make(tmp_path / "notes.pdf", pages=NOTES_PAGES))
        )
        page = _logged_in_page(browser, viewport, base, user.username)
        first_row = page.locator(f'[data-document-row="{first.id}"]')
        second_row = page.locator(f'[data-document-row="{second.id}"]')
        # Each says where it stands among this person's own documents, and that no worker runs.
        expect(first_row).to_contain_text("next in line")
        expect(second_row).to_contain_text("waiting behind 1 of your documents")
        expect(second_row).to_contain_text("No worker is running")
        _shot(page, f"{viewport}-19-queue-waiting")
        second_row.get_by_role("button", name="Cancel").click()
        expect(second_row.locator(".badge")).to_have_text("Cancelled")
        expect(second_row.get_by_role("button", name="Process again")).to_be_visible()
    finally:
        live.worker.start()
        workers_forget()
    # The other one finishes while the person looks at the list: a notice says so.
    expect(page.locator(".toast")).to_contain_text("“report” is ready", timeout=READY_TIMEOUT_MS)
    expect(first_row.locator(".badge")).to_have_text("Ready")
    _shot(page, f"{viewport}-20-queue-ready-notice")
    assert Document.objects.get(id=second.id).status == Status.CANCELLED


def test_upload_times_stay_true_while_the_page_is_open(
    browser: Browser, live_server: object
) -> None:
    user = user_make()
    document = Document.objects.create(
        owner=user,
        title="minutes",
        original_name="minutes.pdf",
        sha256=uuid.uuid4().hex * 2,
        size_bytes=1000,
        status=Status.READY,
    )
    Document.objects.filter(id=document.id).update(created_at=timezone.now() - timedelta(minutes=2))
    base = str(live_server)
    page = _logged_in_page(browser, "desktop", base, user.username)
    page.clock.install()
    # The list, then the document's page, each left open for ten minutes.
    for url, minutes in ((f"{base}/documents/", 2), (f"{base}/documents/{document.id}/", 12)):
        page.goto(url)
        uploaded = page.locator("time[data-relative]")
        expect(uploaded).to_have_text(f"{minutes} minutes ago")
        page.clock.fast_forward("10:00")
        expect(uploaded).to_have_text(f"{minutes + 10} minutes ago")
    page.context.close()


def test_leaving_while_a_file_is_sent_asks_first(
    browser: Browser, live_server: object, tmp_path: Path
) -> None:
    user = user_make()
    base = str(live_server)
    page = _logged_in_page(browser, "desktop", base, user.username)
    page.goto(f"{base}/documents/upload/")
    held: list[object] = []
    # The upload's POST is held, never answered: the file stays "uploading".
    page.route("**/documents/upload/file/", lambda route: held.append(route))
    page.locator("h1").click()  # a person's gesture: Chromium asks before leaving only after one
    _drop(page, "[data-dropzone]", [pdf_make(tmp_path / "slow.pdf", pages=[["slow"]])])
    expect(page.locator(".upload-item[data-state=uploading]")).to_have_count(1)
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.dismiss()))
    page.click("nav a:has-text('Documents')")
    page.wait_for_timeout(500)
    assert asked == ["beforeunload"]
    assert page.url == f"{base}/documents/upload/"
    assert len(held) == 1
    page.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_account_page_tokens_and_password(
    viewport: str, browser: Browser, live_server: object
) -> None:
    user = user_make()
    base = str(live_server)
    page = _logged_in_page(browser, viewport, base, user.username)
    if viewport == "phone":
        page.goto(f"{base}/account/")
    else:
        page.click("nav a:has-text('Account')")
    expect(page.locator("h1")).to_have_text("Your account")
    page.fill("input[name=name]", "nightly import")
    page.click("button:has-text('Create token')")
    token = page.locator("[data-new-token]")
    expect(token).to_have_text(re.compile(r"^docdb_\S{20,}$"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _shot(page, f"{viewport}-23-account-token")
    page.click("button:has-text('Revoke')")
    expect(page.locator(".messages")).to_contain_text("is revoked")
    expect(page.locator("table.tokens tr.revoked")).to_have_count(1)
    _shot(page, f"{viewport}-24-account-revoked")
    page.click("a:has-text('Change your password')")
    page.fill("input[name=old_password]", "wrong")
    page.fill("input[name=new_password1]", "short")
    page.fill("input[name=new_password2]", "short")
    page.click("button:has-text('Change password')")
    expect(page.locator(".error").first).to_be_visible()
    _shot(page, f"{viewport}-25-password-errors")
    page.context.close()
