"""Stable results: in every mode pages of equal score come by document, then page number, the
same query twice gives the same pages, and "More results" never repeats or skips a page.

The corpus is made of ties: two documents of identical pages (identical images give identical
vectors, and identical text equal BM25 scores) beside the five-page report. Results are asked
for the way the search page's "More results" asks for them (`?page=N&partial=1`), a few per
window, with two-stage tiers smaller than the windows' ends so that windows straddle them.
"""

import html
import io
import itertools
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from playwright.sync_api import Browser, expect

from docdb.documents import services
from docdb.documents.models import Document, Status
from docdb.search import services as search_services
from docdb.search import views as search_views
from docdb.search.services import page_results_search
from docdb.weaviate_store import SearchMode
from tests.conftest import REPO_DIR, LoggedIn, Stack
from tests.helpers import PASSWORD, document_stored, document_wait, report_pdf, user_make
from tests.pdf_factory import pdf_make

pytestmark = pytest.mark.timeout(600)

# Results per "More results" window here (24 on the search page), and the two-stage tier
# (WEAVIATE_RERANK_CANDIDATES, 40 by default): windows end inside tiers.
WINDOW = 5
TIER = 7
COPIES = 8
QUERY = "bamboo tensile strength"
SAME_PAGE = ["Bamboo tensile strength", "The same page, again and again."]
SCREENSHOTS = REPO_DIR / "test-artifacts" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}

Key = tuple[uuid.UUID, int]


def _corpus(owner: Any, directory: Path) -> list[Document]:
    """Two documents of COPIES identical pages, and the report; all indexed."""
    paths = [
        pdf_make(directory / f"same-{name}.pdf", pages=[SAME_PAGE] * COPIES, title=name)
        for name in ("first", "second")
    ]
    paths.append(report_pdf(directory, salt=uuid.uuid4().hex))
    documents = [document_stored(owner, path) for path in paths]
    for document in documents:
        services.document_queue(document_id=document.id)
    for document in documents:
        assert document_wait(document.id).status == Status.READY
    return documents


def _keys(results: list[Any]) -> list[Key]:
    return [(result.page.document_id, result.page.number) for result in results]


def _windows(client: Client, params: dict[str, Any]) -> tuple[list[Key], list[str]]:
    """Every result, window after window as "More results" fetches them, until none is left;
    and the windows' HTML."""
    keys: list[Key] = []
    pages: list[str] = []
    for number in itertools.count(1):
        response = client.get("/search/", {**params, "page": number, "partial": "1"})
        assert response.status_code == 200
        pages.append(response.content.decode())
        keys += _keys(response.context["results"])
        if "data-more-link" not in pages[-1]:
            return keys, pages


def _assert_ties_by_document_and_page(results: list[Any]) -> int:
    """Equal scores come by document id, then page number; the longest run of them.

    (Two-stage scores fall within each tier only: a later tier's best may score above an
    earlier tier's last.)"""
    longest = run = 1
    for better, worse in itertools.pairwise(results):
        if better.score == worse.score:
            first = (str(better.page.document_id), better.page.number)
            second = (str(worse.page.document_id), worse.page.number)
            assert first < second
            run += 1
            longest = max(longest, run)
        else:
            run = 1
    return longest


@override_settings(WEAVIATE_RERANK_CANDIDATES=TIER)
def test_more_results_neither_repeat_nor_skip_pages_in_any_mode(
    live: Stack, tmp_path: Path, logged_in: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_services, "PAGE_SIZE", WINDOW)
    monkeypatch.setattr(search_views, "PAGE_SIZE", WINDOW)
    owner = user_make()
    documents = _corpus(owner, tmp_path)
    client = logged_in(owner)
    for mode, alpha in (("vector", 0.5), ("hybrid", 0.5), ("hybrid", 0.9), ("keyword", 0.5)):
        params = {"q": QUERY, "mode": mode, "alpha": alpha}
        shown, _ = _windows(client, params)
        # One large query: the same ranking, in one go.
        large = page_results_search(
            user=owner, query=QUERY, mode=SearchMode(mode), limit=100, alpha=alpha
        )
        assert len(shown) == len(set(shown)), (mode, shown)
        assert shown == _keys(large.results), mode
        # Keyword search finds the pages naming bamboo; the others find every page.
        expected = 2 * COPIES + (2 if mode == "keyword" else 5)
        assert len(shown) == expected, mode
        # Many equal scores, which is what the test is about (runs are cut by tiers of 7).
        assert _assert_ties_by_document_and_page(large.results) >= 5, mode
        # The same query again: the same first window.
        again = client.get("/search/", {**params, "page": 1, "partial": "1"})
        assert _keys(again.context["results"]) == shown[:WINDOW]

    # Filters keep the ranking's order, and narrow it.
    filtered, _ = _windows(
        client, {"q": QUERY, "mode": "vector", "document": [str(documents[1].id)]}
    )
    assert filtered == [(documents[1].id, number) for number in range(1, COPIES + 1)]


def test_scores_are_shares_of_the_best_on_the_page_and_raw_in_the_api(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    _corpus(owner, tmp_path)
    response = logged_in(owner).get("/search/", {"q": QUERY, "mode": "keyword"})
    text = response.content.decode()
    best = response.context["best_score"]
    results = response.context["results"]
    shares = [int(share) for share in re.findall(r"</progress>(\d+)%</span>", text)]
    assert shares == [round(result.score / best * 100) for result in results]
    assert shares[0] == 100 and shares[-1] < 100
    assert f"raw keyword score {results[0].score:.4f}" in text

    out = io.StringIO()
    call_command("create_api_token", owner.username, stdout=out)
    api = Client(headers={"Authorization": f"Bearer {out.getvalue().strip()}"})
    answer = api.get("/api/search", {"q": QUERY, "mode": "keyword", "limit": 24}).json()
    assert [hit["score"] for hit in answer["results"]] == [result.score for result in results]


def test_the_way_back_from_a_page_keeps_mode_alpha_and_filters(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner = user_make()
    documents = _corpus(owner, tmp_path)
    client = logged_in(owner)
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    params = {
        "q": QUERY,
        "mode": "hybrid",
        "alpha": "0.3",
        "document": [str(documents[0].id), str(documents[2].id)],
        "date_from": since,
    }
    wanted = {key: value if isinstance(value, list) else [value] for key, value in params.items()}
    _, windows = _windows(client, params)
    card = html.unescape(re.findall(r'<li class="result">\s*<a href="([^"]+)"', windows[0])[0])
    view = client.get(card)
    assert view.status_code == 200
    page = view.content.decode()
    back = html.unescape(re.search(r'<a href="([^"]+)" data-back-to-results>', page)[1])  # type: ignore[index]
    assert urlsplit(back).path == "/search/"
    assert parse_qs(urlsplit(back).query) == wanted
    # Previous and next pages keep the search too, and so the way back.
    step = html.unescape(re.search(r'rel="(?:next|prev)" href="([^"]+)"', page)[1])  # type: ignore[index]
    assert parse_qs(urlsplit(step).query) == wanted
    # Back on the results, the same mode, balance and filters are set.
    again = client.get(back)
    assert again.context["state"]["mode"] == "hybrid"
    assert again.context["state"]["alpha"] == "0.3"
    assert again.context["state"]["documents"] == set(wanted["document"])


@override_settings(WEAVIATE_RERANK_CANDIDATES=TIER)
@pytest.mark.browser
def test_a_person_pages_through_ties_and_sees_shares_of_the_best(
    browser: Browser,
    live: Stack,
    live_server: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(search_services, "PAGE_SIZE", WINDOW)
    monkeypatch.setattr(search_views, "PAGE_SIZE", WINDOW)
    owner = user_make()
    _corpus(owner, tmp_path)
    base = str(live_server)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for viewport, size in VIEWPORTS.items():
        context = browser.new_context(viewport=size)  # type: ignore[arg-type]
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{base}/login/")
        page.fill("input[name=username]", owner.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{base}/search/?q=bamboo+tensile+strength&mode=hybrid&alpha=0.7")
        cards = page.locator("[data-results] > li")
        expect(cards).to_have_count(WINDOW)
        while page.locator("[data-more-link]").count():
            shown = cards.count()
            page.click("[data-more-link]")
            expect(cards).not_to_have_count(shown)
        hrefs = cards.locator("a").evaluate_all("links => links.map(link => link.pathname)")
        assert len(hrefs) == len(set(hrefs)) == 2 * COPIES + 5
        first_score = page.locator(".score").first
        expect(first_score).to_have_text("100%")
        assert "raw hybrid score" in (first_score.get_attribute("title") or "")
        page.screenshot(path=str(SCREENSHOTS / f"{viewport}-search-stable.png"), full_page=True)
        page.locator("[data-results] > li a").nth(WINDOW + 1).click()
        back = page.locator("[data-back-to-results]")
        assert "alpha=0.7" in (back.get_attribute("href") or "")
        back.click()
        expect(page.locator("input[name=mode][value=hybrid]")).to_be_checked()
        expect(page.locator("input[name=alpha]")).to_have_value("0.7")
        context.close()
