"""The Expiring access page in the browser: an owner renews a membership ending in three days."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from groups_app.models import AccessRequest, GroupOwner
from groups_app.services.approvals.changes import members_add_or_file
from sandbox.models import UserGroup, WorkspaceUser
from tests.browser.conftest import sign_in
from tests.factories import help_desk, viewer

READERS = "groupReaders0000000000000001"


def test_an_owner_renews_a_membership_ending_soon(page, live_server, transactional_db):
    UserGroup.objects.create(id=READERS, name="Readers")
    WorkspaceUser.objects.create(name="Bob", email="bob@example.com")
    members_add_or_file(
        actor=help_desk(username="hana", email="hana@example.com"),
        group_id=READERS,
        emails=["bob@example.com"],
        ends_on=timezone.localdate() + timedelta(days=3),
    )
    olga = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=olga, email=olga.email, identity=olga.email
    )
    new_end = timezone.localdate() + timedelta(days=60)

    sign_in(page, live_server, "olga")
    page.goto(f"{live_server.url}/expiring/")
    page.get_by_label("bob@example.com").check()
    page.get_by_label("Reason (for a renewal)").fill("Project extended")
    page.get_by_role("button", name="Renew").click()
    expect(page.get_by_text("Give the new end date.")).to_be_visible()
    assert AccessRequest.objects.get(
        email="bob@example.com"
    ).needed_until == timezone.localdate() + timedelta(days=3)

    page.get_by_label("New end date").fill(f"{new_end:%Y-%m-%d}")
    page.get_by_label("Reason (for a renewal)").fill("Project extended")
    page.get_by_role("button", name="Renew").click()
    expect(page.get_by_text("Renewed: 1 membership.")).to_be_visible()
    assert AccessRequest.objects.get(email="bob@example.com").needed_until == new_end
