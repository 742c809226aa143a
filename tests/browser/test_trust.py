"""Flows that must hold: a proposal the second Administrator learns of and decides, a privileged
group that tells Help desk up front what it may do, and a change answered after the deadline."""

import pytest
from playwright.sync_api import expect

from groups_app.models import AuditEntry, ChangeProposal
from groups_app.segment import Permission, Resource
from groups_app.services.approvals.changes import permissions_add_or_propose
from groups_app.services.errors import AwaitingApproval
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Role, UserGroup
from tests.browser.conftest import screenshot, sign_in


def a_team(workspace):
    return next(
        g
        for name, g in workspace.items()
        if name != "All Employees" and "<" not in name and g.memberships.exists()
    )


def make_privileged(group):
    from groups_app.services.mirror.sync import sync_workspace

    owner = Role.objects.get(name="Workspace Owner")
    GroupPermission.objects.create(group=group, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    sync_workspace(trigger="test")


def test_a_second_administrator_sees_the_proposal_waiting_and_approves_it(page, live_server, workspace):
    from tests.factories import administrator

    team = a_team(workspace)
    ada = administrator(username="ada", email="ada@example.com")
    administrator(username="bea", email="bea@example.com")
    owner = Role.objects.get(name="Workspace Owner")
    grant = Permission(owner.id, resources=(Resource("ws1", "WORKSPACE"),))
    with pytest.raises(AwaitingApproval):
        permissions_add_or_propose(actor=ada, group_id=team.id, permissions=[grant], confirm_unknown=True)

    sign_in(page, live_server, "bea")
    expect(page.get_by_text("1 proposal to decide")).to_be_visible()
    expect(page.get_by_role("link", name="Waiting for you 1 waiting")).to_be_visible()
    page.get_by_role("link", name="Open “Waiting for you”").click()
    expect(page.get_by_role("heading", name="1 proposal waiting")).to_be_visible()
    page.get_by_role("link", name=f"Grant on {team.name}").click()
    expect(page.get_by_text("Who gains the role")).to_be_visible()
    screenshot(page, "proposal-waiting")
    page.get_by_role("button", name="Approve and apply").click()

    expect(page.get_by_role("status").or_(page.get_by_role("alert")).first).to_contain_text("Approved")
    assert ChangeProposal.objects.get().status == ChangeProposal.Status.APPROVED
    assert GroupPermission.objects.filter(group=team, role=owner).exists()


def test_help_desk_sees_up_front_that_a_privileged_group_is_for_administrators(page, live_server, workspace):
    from tests.factories import help_desk

    team = a_team(workspace)
    make_privileged(team)
    help_desk(username="hana", email="hana@example.com")

    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/groups/{team.id}/")

    expect(page.get_by_text("only Administrators change its members")).to_be_visible()
    expect(page.get_by_role("link", name="Request access for someone…")).to_be_visible()
    expect(page.get_by_role("button", name="Add members")).to_have_count(0)
    expect(page.get_by_role("link", name="Remove").first).to_have_count(0)


def test_a_rename_answered_after_the_deadline_is_reported_and_checked_again(
    page, live_server, workspace, settings
):
    from tests.factories import administrator

    settings.SEGMENT_REQUEST_DEADLINE = 1.0
    settings.SEGMENT_READ_TIMEOUT = 5
    settings.SANDBOX_HANG_SECONDS = 1.3
    team = a_team(workspace)
    administrator(username="ada", email="ada@example.com")
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/groups/{team.id}/")
    page.get_by_role("link", name="Rename").click()
    inject_fault("update_user_group", "hang", 1)
    page.get_by_label("Name").fill("Renamed team")
    page.get_by_role("button", name="Save name").click()

    expect(page.get_by_text("Segment did not confirm the change")).to_be_visible()
    expect(page.get_by_text("Try again in a moment")).to_have_count(0)
    page.get_by_role("link", name="See the audit entry (Check again)").click()
    page.get_by_role("button", name="Check again now").click()

    expect(page.get_by_text("Read back: applied.")).to_be_visible()
    entry = AuditEntry.objects.get(action="group.rename")
    assert entry.resolution == AuditEntry.Resolution.APPLIED
    assert UserGroup.objects.get(pk=team.pk).name == "Renamed team"
