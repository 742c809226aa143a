"""A person browsing: sign in, find a group, read it, page its users and invites."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in


def users_range(page):
    return page.locator("#users-panel [data-range]")


def invites_range(page):
    return page.locator("#invites-panel [data-range]")


def test_sign_in_search_and_open_a_group(page, live_server, workspace, viewer_account):
    sign_in(page, live_server)
    expect(page.get_by_role("heading", name="Groups")).to_be_visible()
    expect(page.get_by_text("Sandbox workspace.")).to_be_visible()
    screenshot(page, "group-list")
    page.evaluate("window.stillTheSamePage = true")

    page.get_by_label("Search by name").fill("employ")

    expect(page.locator("#groups-table caption")).to_contain_text("1 group matching “employ”")
    expect(page).to_have_url(re.compile(r"\?.*q=employ"))
    assert page.evaluate("window.stillTheSamePage") is True  # swapped by htmx, not reloaded
    page.get_by_role("link", name="All Employees").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("All Employees")
    expect(page.get_by_role("heading", name="Permissions")).to_be_visible()
    expect(page.locator(".permission-list")).to_contain_text("Workspace Member")
    screenshot(page, "group-detail")


def test_page_users_to_the_end_and_back(page, live_server, workspace, viewer_account):
    group = workspace["All Employees"]
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/groups/{group.id}/")
    users = page.locator("#users-panel")
    users.get_by_role("link", name="100").click()
    expect(users_range(page)).to_have_text("1–100 of 450")

    for start in (101, 201, 301, 401):
        users.get_by_role("link", name="Next →").click()
        expect(users_range(page)).to_have_text(f"{start}–{min(start + 99, 450)} of 450")
    expect(users.locator('span[aria-disabled="true"]', has_text="Next")).to_be_visible()

    page.go_back()
    expect(users_range(page)).to_have_text("301–400 of 450")
    users.get_by_role("link", name="← Previous").click()
    expect(users_range(page)).to_have_text("201–300 of 450")
    page.go_back()
    expect(users_range(page)).to_have_text("301–400 of 450")
    page.go_forward()
    expect(users_range(page)).to_have_text("201–300 of 450")


def test_change_page_size_and_page_invites_independently(page, live_server, workspace, viewer_account):
    group = workspace["All Employees"]
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/groups/{group.id}/")
    page.locator("#users-panel").get_by_role("link", name="10", exact=True).click()
    expect(users_range(page)).to_have_text("1–10 of 450")
    page.locator("#users-panel").get_by_role("link", name="Next →").click()
    expect(users_range(page)).to_have_text("11–20 of 450")

    page.locator("#invites-panel").get_by_role("link", name="10", exact=True).click()
    expect(invites_range(page)).to_have_text("1–10 of 30")
    page.locator("#invites-panel").get_by_role("link", name="Next →").click()

    expect(invites_range(page)).to_have_text("11–20 of 30")
    expect(users_range(page)).to_have_text("11–20 of 450")
    page.reload()  # the URL holds both tables' state
    expect(invites_range(page)).to_have_text("11–20 of 30")
    expect(users_range(page)).to_have_text("11–20 of 450")


def test_group_with_html_in_its_name_shows_it_as_text(page, live_server, workspace, viewer_account):
    name = 'R&D <Zürich> "Ångström" Team'
    sign_in(page, live_server)

    page.get_by_label("Search by name").fill("zürich")
    page.get_by_role("link", name=name).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page).to_have_title(f"{name} · Group Admin")


def test_everything_works_without_javascript(browser, live_server, workspace, viewer_account):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server)
        page.get_by_label("Search by name").fill("employ")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#groups-table caption")).to_contain_text("1 group matching “employ”")
        page.get_by_role("link", name="All Employees").click()
        # Painted from Group Admin's copy; its link reads the group live, with page links.
        expect(page.locator("#live-read")).to_contain_text("From Group Admin's copy of the workspace, as of")
        page.get_by_role("link", name="Show it live").click()
        expect(page.locator("#live-read")).to_contain_text("Live from Segment.")
        page.locator("#users-panel").get_by_role("link", name="Next →").click()
        expect(users_range(page)).to_have_text("26–50 of 450")
        page.locator("#invites-panel").get_by_role("link", name="Next →").click()
        expect(invites_range(page)).to_have_text("26–30 of 30")
        expect(users_range(page)).to_have_text("26–50 of 450")
    finally:
        context.close()


def test_unknown_group_shows_a_way_back(page, live_server, workspace, viewer_account):
    sign_in(page, live_server)

    page.goto(f"{live_server.url}/groups/deletedGroup123/")

    expect(
        page.get_by_text("That group does not exist in Segment. It may have been deleted.")
    ).to_be_visible()
    page.get_by_role("link", name="Back to all groups").click()
    expect(page.get_by_role("heading", name="Groups")).to_be_visible()
