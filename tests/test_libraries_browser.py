"""Libraries in Chromium, at a desktop and a phone width: an owner opens the Libraries page from
the navigation, makes a shared library, adds a member by email address, changes their role and
is told why the last owner cannot leave; the member then sees the library without controls.
No page breaks the Content-Security-Policy.
"""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, expect

from docdb.documents.models import Library, Membership, Role
from tests.helpers import PASSWORD, user_make
from tests.test_browser import VIEWPORTS, _logged_in_page, _shot
from tests.test_csp_browser import VIOLATIONS_LISTENER

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_owner_adds_a_member_and_changes_their_role(
    viewport: str, browser: Browser, live_server: object
) -> None:
    owner = user_make()
    friend = User.objects.create_user(
        f"friend-{viewport}", email=f"friend-{viewport}@example.org", password=PASSWORD
    )
    base = str(live_server)
    page = _logged_in_page(browser, viewport, base, owner.username)
    page.context.add_init_script(VIOLATIONS_LISTENER)

    page.click("nav >> text=Libraries")
    expect(page.locator("h1")).to_have_text("Libraries")
    expect(page.locator("[data-library-row]")).to_have_count(1)  # the personal library
    page.fill("#new input[name=name]", "Household papers")
    page.click("#new button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Household papers")
    expect(page.locator(".messages")).to_contain_text("add the people to share it with")

    page.fill(".member-add input[name=who]", friend.email)
    page.select_option(".member-add select[name=role]", "viewer")
    page.click(".member-add button[type=submit]")
    expect(page.locator(".messages")).to_contain_text(f"{friend.username} is now a member")
    row = page.locator(f"tr[data-member='{friend.username}']")
    expect(row.locator("select[name=role]")).to_have_value("viewer")
    row.locator("select[name=role]").select_option("editor")
    row.locator("button:has-text('Change')").click()
    expect(page.locator(".messages")).to_contain_text(f"{friend.username} is now an editor.")
    expect(row.locator("select[name=role]")).to_have_value("editor")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _shot(page, f"{viewport}-60-library-members")

    # The last owner cannot leave, and is told what to do instead.
    page.click("text=Leave this library…")
    page.click("button:has-text('Leave')")
    expect(page.locator(".messages")).to_contain_text("You are the last owner")
    library = Library.objects.get(name="Household papers")
    assert Membership.objects.get(library=library, user=friend).role == Role.EDITOR

    page.goto(f"{base}/libraries/")
    expect(page.locator("[data-library-row]")).to_have_count(2)
    _shot(page, f"{viewport}-61-libraries")
    page.click("a.doc-title:has-text('Personal')")
    expect(page.locator("[data-personal-notice]")).to_contain_text("make a shared library")
    _shot(page, f"{viewport}-62-library-personal")
    assert page.evaluate("window.cspViolations") == []
    page.context.close()

    # The member sees who is in it, and nothing to change.
    page = _logged_in_page(browser, viewport, base, friend.username)
    page.goto(f"{base}/libraries/{library.pk}/")
    expect(page.locator("tr[data-member]")).to_have_count(2)
    expect(page.locator("select, .member-add, summary:has-text('Rename')")).to_have_count(0)
    _shot(page, f"{viewport}-63-library-as-editor")
    page.context.close()
