"""Chromium walks every page, the admin's and the operations page included, with the
Content-Security-Policy on: no page needs an inline script or style, so the browser reports no
violation, and every response carries the policy and the Permissions-Policy."""

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import Browser, Page, Response, expect

from docdb.documents.models import PipelineRun, Status
from tests.conftest import Stack
from tests.helpers import PASSWORD, UNIQUE_PHRASE, document_wait, report_pdf
from tests.ops_helpers import document_add, staff_make

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

# Runs before any script of the page and outside its policy: every violation lands here.
VIOLATIONS_LISTENER = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
    window.cspViolations.push(
        event.violatedDirective + " blocked " + (event.blockedURI || "inline") +
        " at " + event.sourceFile + ":" + event.lineNumber
    );
});
"""


class Walk:
    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.console: list[str] = []
        self.violations: dict[str, list[str]] = {}
        self.headers_missing: list[str] = []
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message: object) -> None:
        text = message.text  # type: ignore[attr-defined]
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.console.append(f"{self.page.url}: {text}")

    def _response(self, response: Response) -> None:
        # Pages and what their scripts fetch; static files are served beside Django here.
        if response.request.resource_type not in ("document", "fetch", "xhr"):
            return
        headers = response.headers
        if "content-security-policy" not in headers or "permissions-policy" not in headers:
            self.headers_missing.append(response.url)

    def visit(self, path: str, ready: str = "body") -> None:
        self.page.goto(f"{self.base}{path}")
        expect(self.page.locator(ready).first).to_be_visible()
        self.page.wait_for_load_state("networkidle")
        self.record(path)

    def record(self, label: str) -> None:
        found = self.page.evaluate("window.cspViolations || []")
        if found:
            self.violations[label] = found


def test_every_page_passes_the_content_security_policy(
    browser: Browser, live: Stack, live_server: object, tmp_path: Path
) -> None:
    staff = staff_make()
    upload = report_pdf(tmp_path)
    document = document_wait(document_add(staff, upload).id)
    assert document.status == Status.READY, document.error
    run = PipelineRun.objects.filter(document=document).first()
    assert run is not None
    call_command("create_api_token", staff.username, stdout=io.StringIO())
    base = str(live_server)

    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_init_script(VIOLATIONS_LISTENER)
    page = context.new_page()
    page.set_default_timeout(30_000)
    walk = Walk(page, base)

    walk.visit(reverse("login"), "form")
    page.fill("input[name=username]", staff.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/documents/")
    walk.record("after login")

    page_url = reverse("documents:page", args=[document.id, 1])
    walk.visit(reverse("documents:list"), "table.documents")
    walk.visit(reverse("documents:upload"), "[data-dropzone]")
    # The upload page's script at work: a duplicate found by checksum, before sending.
    page.set_input_files("input[type=file]", str(upload))
    expect(page.locator(".upload-item[data-state=duplicate]")).to_be_visible()
    walk.record("upload, a duplicate")
    walk.visit(reverse("documents:detail", args=[document.id]), "[data-document-status]")
    walk.visit(reverse("documents:delete", args=[document.id]), "form")
    # The page view loads its similar pages and, with a query, the similarity maps.
    for path in (
        reverse("libraries:list"),
        reverse("libraries:detail", args=[document.library_id]),
        reverse("libraries:delete", args=[document.library_id]),
    ):
        walk.visit(path, "main h1")
    walk.visit(f"{page_url}?q=bamboo", "[data-maps]")
    expect(page.locator("[data-similar-body] .similar-list, [data-similar-body] p")).to_be_visible()
    expect(page.locator("[data-maps] button").first).to_be_visible()
    walk.record("page with similar pages and maps")
    for mode in ("vector", "hybrid", "keyword"):
        walk.visit(f"{reverse('search:search')}?q={UNIQUE_PHRASE}&mode={mode}", ".result")
    walk.visit(reverse("search:search"), "form")

    walk.visit(reverse("admin:index"), "#content")
    admin_pages = [
        reverse("admin:documents_document_changelist"),
        reverse("admin:documents_document_change", args=[document.id]),
        reverse("admin:documents_document_changelist") + "?status__exact=ready",
        reverse("admin:documents_page_changelist"),
        reverse("admin:documents_page_change", args=[document.pages.first().id]),  # type: ignore[union-attr]
        reverse("admin:documents_pipelinerun_changelist"),
        reverse("admin:documents_pipelinerun_change", args=[run.id]),
        reverse("admin:documents_document_recreate_index"),
        reverse("admin:documents_library_changelist"),
        reverse("admin:documents_library_change", args=[document.library_id]),
        reverse("admin:documents_membership_changelist"),
        reverse("admin:docdb_api_apitoken_changelist"),
        reverse("admin:auth_user_changelist"),
        reverse("admin:auth_user_change", args=[staff.pk]),
        reverse("admin:auth_group_add"),
        reverse("ops:operations"),
        "/api/docs",
    ]
    for path in admin_pages:
        walk.visit(path, "body")

    # The pages a person sees when something is refused: the lockout page after failed logins.
    context.clear_cookies()
    walk.visit(reverse("login"), "form")
    for _ in range(5):
        page.fill("input[name=username]", "nobody-at-all")
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Too many failed logins")
    walk.record("lockout page")

    assert walk.violations == {}
    assert walk.console == []
    assert walk.headers_missing == []
    context.close()


def test_an_injected_inline_script_is_blocked(
    browser: Browser, live: Stack, live_server: object
) -> None:
    """The policy does bite: markup that slipped into a page cannot run a script or style."""
    staff = staff_make()
    base = str(live_server)
    context = browser.new_context()
    context.add_init_script(VIOLATIONS_LISTENER)
    page = context.new_page()
    page.goto(f"{base}{reverse('login')}")
    page.fill("input[name=username]", staff.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/documents/")
    page.evaluate(
        """() => {
            const holder = document.createElement("div");
            holder.innerHTML =
                '<img src="x" onerror="window.ran = true"><p style="color: red">x</p>';
            document.body.append(holder);
            const script = document.createElement("script");
            script.textContent = "window.ran = true";
            document.body.append(script);
        }"""
    )
    page.wait_for_timeout(500)
    assert page.evaluate("window.ran") is None
    violations = page.evaluate("window.cspViolations")
    assert any(v.startswith("script-src") for v in violations), violations
    assert any(v.startswith("style-src") for v in violations), violations
    context.close()
