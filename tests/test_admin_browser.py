"""The admin and the operations page in Chromium, with screenshots of each screen."""

import re
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from docdb.documents.models import Document, PipelineRun, RunKind, Status
from docdb.weaviate_store import pages_delete_numbers
from tests.conftest import REPO_DIR, Stack
from tests.helpers import PASSWORD, document_wait, page_wait, report_pdf, user_make
from tests.ops_helpers import document_add, document_ready, run_wait, small_pdf, staff_make

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

SCREENSHOTS = REPO_DIR / "test-artifacts" / "screenshots"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"admin-{name}.png"), full_page=True)


def _reload_until(page: Page, text: str) -> None:
    """Reload the operations page until the worker's result shows `text` in it."""
    for _ in range(60):
        if text in page.locator("#consistency").inner_text():
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(page.locator("#consistency")).to_contain_text(text)


def _images_loaded(page: Page) -> None:
    """Every thumbnail on the page decoded (served by the staff view), none broken."""
    page_wait(
        page,
        "[...document.querySelectorAll('img.docdb-thumb')]"
        ".every(image => image.complete && image.naturalWidth > 0)",
    )


def test_admin_screens(browser: Browser, live: Stack, live_server: object, tmp_path: Path) -> None:
    owner = user_make("alice")
    report = document_wait(document_add(owner, report_pdf(tmp_path, "Annual report 2025.pdf")).id)
    assert report.status == Status.READY, report.error
    notes = document_ready(owner, tmp_path, "meeting notes.pdf")
    # A title like a long file name, without a space to break at.
    long_title = "quarterly_board_meeting_minutes_" * 8
    Document.objects.filter(id=notes.id).update(title=long_title)
    locked = small_pdf(tmp_path, "salaries (locked).pdf", pages=1, user_password="secret")
    assert document_wait(document_add(owner, locked).id).status == Status.FAILED
    staff = staff_make()

    base = str(live_server)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{base}{reverse('admin:index')}")
    page.fill("input[name=username]", staff.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#docdb-operations")).to_be_visible()
    _shot(page, "01-index")

    page.goto(f"{base}{reverse('admin:documents_document_changelist')}")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    _images_loaded(page)
    expect(page.locator("#result_list")).to_contain_text(long_title[:40])
    # The admin scrolls a table too wide inside its own box: it must not need to.
    results = "document.querySelector('.results')"
    assert page.evaluate(f"{results}.scrollWidth <= {results}.clientWidth")
    _shot(page, "02-documents")

    page.click("text=Annual report 2025")
    expect(page.locator(".field-page_gallery img.docdb-thumb")).to_have_count(5)
    _images_loaded(page)
    _shot(page, "03-document")
    page.click("button:has-text('Re-import into Weaviate')")
    expect(page.locator(".messagelist")).to_contain_text("1 of 1 document queued for re-import.")
    run_wait(PipelineRun.objects.get(document=report, kind=RunKind.REIMPORT).id)
    # Something for the consistency report to find.
    pages_delete_numbers(document_id=report.id, numbers=[2])

    page.goto(f"{base}{reverse('admin:documents_document_changelist')}?status__exact=failed")
    page.click("text=salaries (locked)")
    expect(page.locator(".field-failure_reason pre")).to_contain_text("password")
    _shot(page, "04-failed-document")

    page.goto(f"{base}{reverse('admin:documents_page_changelist')}")
    _images_loaded(page)
    _shot(page, "05-pages")

    page.goto(f"{base}{reverse('admin:documents_pipelinerun_changelist')}")
    expect(page.locator("#result_list tbody tr")).to_have_count(4)
    _shot(page, "06-runs")

    page.clock.install()
    page.goto(f"{base}{reverse('ops:operations')}")
    expect(page.locator(".ops-state.ok")).to_have_count(6)  # with the file storage and OCR
    # The services and pipeline sections refresh themselves: marked, they come back unmarked.
    page.locator("[data-refresh]").evaluate_all(
        "sections => sections.forEach(s => s.dataset.old = 1)"
    )
    page.clock.fast_forward("00:16")
    expect(page.locator("[data-refreshed]")).to_contain_text("Updated at")
    expect(page.locator("[data-refresh][data-old]")).to_have_count(0)
    expect(page.locator("[data-refresh]")).to_have_count(2)
    expect(page.locator(".ops-state.ok")).to_have_count(6)
    # The page shows the worker's last check; ask for one now.
    page.click("input[value='Check now']")
    expect(page.locator(".messagelist")).to_contain_text("Check queued")
    _reload_until(page, "pages missing from Weaviate: 2")
    _shot(page, "07-operations")

    page.click("text=Repair mismatches")
    expect(page.locator(".messagelist")).to_contain_text("Repair queued (its run)")
    expect(page.locator(".messagelist a")).to_have_attribute(
        "href", re.compile(r"/admin/documents/pipelinerun/\d+/change/")
    )
    _reload_until(page, "Everything agrees.")
    _shot(page, "08-operations-repaired")

    page.goto(f"{base}{reverse('admin:documents_document_recreate_index')}")
    expect(page.locator("input[name=confirm]")).to_be_visible()
    _shot(page, "09-recreate-collection")
    context.close()
