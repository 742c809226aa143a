"""Undo in the browser: an Administrator finds a member removed in Segment's own app in the audit
log, previews the undo and applies it; the member is back."""

from playwright.sync_api import expect

from groups_app.models import AuditEntry
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.segment_client import get_client
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.browser.conftest import sign_in
from tests.factories import administrator

READERS = "groupReaders0000000000000001"


def test_a_member_removed_outside_is_re_added_by_undo(page, live_server, transactional_db):
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    Membership.objects.create(
        group=readers, user=WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    )
    sync_workspace(trigger="baseline")
    get_client().remove_users_from_user_group(READERS, ["alice@example.com"])
    sync_workspace(trigger="test")
    entry = AuditEntry.objects.get(action=AuditEntry.Action.OBSERVED)
    administrator(username="ada", email="ada@example.com")

    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/audit/{entry.pk}/")
    page.get_by_role("link", name="Undo…").click()
    expect(page.get_by_role("heading", name="Undo the change to Readers")).to_be_visible()
    expect(page.get_by_text("alice@example.com", exact=True)).to_be_visible()
    page.get_by_role("button", name="Undo this change").click()

    expect(page.get_by_role("heading", name="Undone: Readers")).to_be_visible()
    assert Membership.objects.filter(group=readers, user__email="alice@example.com").exists()
    page.get_by_role("link", name="The undo's audit entry").click()
    expect(page.get_by_text(f"Undoes entry {entry.pk}.")).to_be_visible()
