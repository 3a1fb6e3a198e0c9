"""Tags and the selection in Chromium, at a desktop and a phone width: tick documents (all on
the page, then one less), tag them, filter the list by a tag chip, edit a document's tags; in
the search's filters, find documents by title as one types and keep them as chips.

The documents are rows made ready here and the search index's answers come from a stand-in:
what is tested is the pages and their scripts, not the pipeline.
"""

import hashlib
import re

import pytest
from playwright.sync_api import Browser, expect

from docdb.documents.models import Document, Status
from docdb.search import services as search_services
from docdb.weaviate_store import Ranking
from tests.helpers import user_make
from tests.test_browser import VIEWPORTS, _logged_in_page, _shot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TITLES = ["Electricity bill March", "Lease agreement", "Water bill April"]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_tag_a_selection_filter_by_it_and_choose_documents_by_title(
    viewport: str, browser: Browser, live_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = user_make()
    for title in TITLES:
        Document.objects.create(
            owner=user,
            title=title,
            original_name=f"{title}.pdf",
            sha256=hashlib.sha256(f"{user.pk}{title}".encode()).hexdigest(),
            status=Status.READY,
            pages_total=2,
            pages_done=2,
        )
    monkeypatch.setattr(
        search_services, "pages_ranked", lambda **_: Ranking(hits=[], best_score=None)
    )
    base = str(live_server)
    page = _logged_in_page(browser, viewport, base, user.username)

    # Select all on the page, then leave the lease out, and tag the two bills.
    page.check("[data-select-all]")
    expect(page.locator("[data-bulk-count]")).to_have_text("3 selected:")
    page.uncheck("input[data-select][aria-label*='Lease']")
    expect(page.locator("[data-bulk-count]")).to_have_text("2 selected:")
    expect(page.locator("[data-bulk-tag]")).to_be_visible()
    page.fill("[data-bulk-tag] input", "Bills")
    _shot(page, f"{viewport}-40-documents-selected")
    page.click("[data-bulk] button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Added the tag “Bills” to 2 documents.")
    expect(page.locator("a.tag:has-text('Bills')")).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _shot(page, f"{viewport}-41-documents-tagged")

    # A tag chip filters the list; the title search narrows it further.
    page.locator("a.tag:has-text('Bills')").first.click()
    page.wait_for_url(re.compile(r"tag=Bills"))
    expect(page.locator("tr[data-document-row]")).to_have_count(2)
    page.fill("input[name=q]", "water")
    page.keyboard.press("Enter")
    expect(page.locator("tr[data-document-row]")).to_have_count(1)
    expect(page.locator(".active-filters")).to_contain_text("Bills")
    _shot(page, f"{viewport}-42-documents-filtered")

    # A document's page adds a tag, suggesting the person's own, and removes one.
    page.click("a.doc-title:has-text('Water bill April')")
    page.fill(".tag-form input[name=name]", "Home")
    page.click(".tag-form button")
    expect(page.locator(".tag-line .tag")).to_have_count(2)
    expect(page.locator("datalist#tag-names option[value=Bills]")).to_have_count(1)
    _shot(page, f"{viewport}-43-document-tags")
    page.click("button[aria-label='Remove the tag Home']")
    expect(page.locator(".tag-line .tag")).to_have_count(1)

    # The search's document filter: typed titles suggest documents, chosen ones are chips.
    page.goto(f"{base}/search/?q=bill")
    page.click(".filters summary")
    page.fill("[data-doc-input]", "bill")
    options = page.locator("[data-doc-suggestions] [role=option]")
    expect(options).to_have_count(2)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("[data-doc-chip]")).to_have_text(re.compile("Water bill April"))
    page.check("input[name=tag][value=Bills]")
    page.fill("[data-doc-input]", "a")
    expect(options).to_have_count(2)  # the chosen one is not offered again
    _shot(page, f"{viewport}-44-search-document-typeahead")
    page.click("[data-doc-suggestions] [role=option]:has-text('Lease agreement')")
    expect(page.locator("[data-doc-chip]")).to_have_count(2)
    page.click("button:has-text('Apply filters')")
    page.wait_for_url(re.compile(r"document=.*document=.*tag=Bills"))
    expect(page.locator("[data-doc-chip]")).to_have_count(2)
    page.click("[data-doc-chip]:has-text('Lease') [data-doc-remove]")
    expect(page.locator("[data-doc-chip]")).to_have_count(1)
    page.click("button:has-text('Apply filters')")
    page.wait_for_url(lambda url: url.count("document=") == 1)
    _shot(page, f"{viewport}-45-search-filtered-by-chips")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.context.close()
