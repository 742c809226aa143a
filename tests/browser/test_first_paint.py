"""A group's page in the browser: painted from the mirror, then swapped for the live read."""

from playwright.sync_api import expect

from tests.browser.conftest import sign_in


def test_the_page_is_painted_from_the_copy_then_read_live(page, live_server, workspace, viewer_account):
    group = workspace["All Employees"]
    sign_in(page, live_server)

    page.goto(f"{live_server.url}/groups/{group.id}/")

    expect(page.locator("#live-read")).to_contain_text("Live from Segment.")
    expect(page.locator("#live-read")).to_contain_text("agrees")
    expect(page.get_by_role("heading", level=1)).to_have_text("All Employees")
    expect(page.locator("#users-panel [data-range]")).to_have_text("1–25 of 450")
    expect(page.get_by_role("link", name="Show it live")).to_have_count(0)
