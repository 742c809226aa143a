"""A group's page in the browser: painted from the mirror, then swapped for the live read."""

import threading

import pytest
from playwright.sync_api import expect

from groups_app.views import groups as group_views
from tests.browser.conftest import sign_in


@pytest.fixture
def held_live_read(monkeypatch):
    """Hold every live read of a group at the server until the test releases it.

    Holding it at the server, not in the browser, leaves the page free to drop its request
    the way it would on a slow network; a read the page kept would answer on release.
    """
    release = threading.Event()
    read = group_views._detail

    def held(*args, **kwargs):
        release.wait(timeout=30)
        return read(*args, **kwargs)

    monkeypatch.setattr(group_views, "_detail", held)
    yield release
    release.set()


def test_the_page_is_painted_from_the_copy_then_read_live(page, live_server, workspace, viewer_account):
    group = workspace["All Employees"]
    sign_in(page, live_server)

    page.goto(f"{live_server.url}/groups/{group.id}/")

    expect(page.locator("#live-read")).to_contain_text("Live from Segment.")
    expect(page.locator("#live-read")).to_contain_text("agrees")
    expect(page.get_by_role("heading", level=1)).to_have_text("All Employees")
    expect(page.locator("#users-panel [data-range]")).to_have_text("1–25 of 450")
    expect(page.get_by_role("link", name="Show it live")).to_have_count(0)


def test_what_the_person_does_first_wins_over_a_slow_live_read(
    page, live_server, workspace, help_desk_account, held_live_read
):
    group = workspace["Data Engineering"]
    sign_in(page, live_server, "hana")

    page.goto(f"{live_server.url}/groups/{group.id}/")
    page.get_by_label("Emails to add").fill("first.wins@partner.example")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-members-form .alert-success")).to_be_visible()
    held_live_read.set()
    page.wait_for_load_state("networkidle")

    expect(page.locator("#add-members-form .alert-success")).to_be_visible()
    expect(page.locator("#live-read")).to_contain_text("From Group Admin's copy of the workspace")
    expect(page.locator("#live-read [data-live-reading]")).to_be_hidden()


def test_reaching_for_a_tick_box_keeps_the_page_under_the_keyboard(
    page, live_server, workspace, help_desk_account, held_live_read
):
    group = workspace["Data Engineering"]
    first = group.memberships.order_by("user__email").first().user.email
    sign_in(page, live_server, "hana")

    page.goto(f"{live_server.url}/groups/{group.id}/")
    tick = page.get_by_label(f"Select {first}")
    tick.focus()
    expect(page.locator("#live-read [data-live-reading]")).to_be_hidden()
    held_live_read.set()
    page.wait_for_load_state("networkidle")

    expect(tick).to_be_focused()
    page.keyboard.press("Space")
    expect(tick).to_be_checked()
    expect(page.locator("#users-panel").get_by_role("button", name="Remove 1 selected…")).to_be_visible()
