"""Owners in the browser: an Administrator names an owner on the group's page, and that owner
(a Viewer) approves a request for the group from "Groups I own"."""

import pytest
from playwright.sync_api import expect

from groups_app.services.approvals.access_requests import access_request_file
from groups_app.services.mirror.sync import sync_workspace
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.browser.conftest import sign_in
from tests.factories import administrator, viewer

READERS = "groupReaders0000000000000001"


@pytest.fixture
def readers(transactional_db):
    group = UserGroup.objects.create(id=READERS, name="Readers")
    Membership.objects.create(
        group=group, user=WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    )
    WorkspaceUser.objects.create(name="Bob", email="bob@example.com")
    sync_workspace(trigger="test")
    return group


def new_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    return context, context.new_page()


def test_an_owner_named_on_the_group_page_approves_a_request_for_it(browser, live_server, readers):
    administrator(username="ada", email="ada@example.com")
    viewer(username="olga", email="olga@example.com")
    bob = viewer(username="bob", email="bob@example.com")

    context, page = new_page(browser)
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/groups/{READERS}/")
    panel = page.locator("#owners-panel")
    panel.get_by_label("Owner to add (email or login)").fill("olga")
    panel.get_by_role("button", name="Add owner").click()
    expect(panel.get_by_text("olga (olga@example.com)", exact=True)).to_be_visible()
    context.close()

    access_request_file(actor=bob, group_id=READERS, justification="Dashboards")

    context, page = new_page(browser)
    sign_in(page, live_server, "olga")
    page.goto(f"{live_server.url}/owned/")
    expect(page.get_by_role("heading", name="Groups I own")).to_be_visible()
    page.get_by_role("link", name="bob@example.com").click()
    page.get_by_role("button", name="Approve and add bob@example.com").click()
    expect(page.get_by_role("status").filter(has_text="Approved: bob@example.com was")).to_be_visible()
    assert Membership.objects.filter(group=readers, user__email="bob@example.com").exists()
    context.close()
