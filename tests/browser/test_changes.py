"""A person changing groups in the browser, and finding every change in the audit log."""

import csv
import io
import re

from playwright.sync_api import expect

from groups_app.models import AuditEntry
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Invite, Membership, UserGroup, WorkspaceUser
from tests.browser.conftest import screenshot, sign_in


def open_group(page, live_server, group):
    page.goto(f"{live_server.url}/groups/{group.id}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(group.name)


def a_team(workspace):
    return next(
        g
        for name, g in workspace.items()
        if name not in ("All Employees",) and "<" not in name and g.memberships.exists()
    )


def test_add_members_bad_email_then_good_ones(page, live_server, workspace, help_desk_account):
    team = a_team(workspace)
    outsider = WorkspaceUser.objects.exclude(memberships__group=team).first()
    sign_in(page, live_server, "hana")
    open_group(page, live_server, team)
    emails = page.get_by_label("Emails to add")

    emails.fill(f"{outsider.email}, not-an-address")
    page.get_by_role("button", name="Add", exact=True).click()

    expect(page.locator("#add-members-form")).to_contain_text(
        "not-an-address is not an email address (it has no @)."
    )
    assert not Membership.objects.filter(group=team, user=outsider).exists()
    expect(emails).to_have_value(f"{outsider.email}, not-an-address")

    emails.fill(f"{outsider.email}\nbrand.new@partner.example")
    page.get_by_role("button", name="Add", exact=True).click()

    expect(page.locator("#add-members-form .alert-success")).to_have_text(
        "Added 1 user, invited 1 person who is not yet a workspace user."
    )
    expect(page.locator("#invites-panel")).to_contain_text("brand.new@partner.example")
    expect(page.locator("#users-panel")).to_contain_text(outsider.email)
    expect(page.locator("#history-panel")).to_contain_text(f"hana added 2 members to {team.name}")
    expect(emails).to_have_value("")
    screenshot(page, "members-added")


def settled(page):
    """Wait until the refreshes a change set off have come back and settled (no htmx work left)."""
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")).to_have_count(0)


def focused_text(page) -> str:
    return page.evaluate("document.activeElement.textContent.trim()")


def test_remove_one_member_closes_the_dialog_and_focuses_the_result(
    page, live_server, workspace, help_desk_account
):
    team = a_team(workspace)
    member = team.memberships.order_by("user__email").first().user
    sign_in(page, live_server, "hana")
    open_group(page, live_server, team)

    page.get_by_role("link", name=f"Remove {member.email}").click()
    dialog = page.locator("#member-dialog")
    expect(dialog).to_contain_text(f"Remove 1 member from {team.name}?")
    expect(dialog).to_contain_text(member.email)
    assert Membership.objects.filter(group=team, user=member).exists()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Remove 1 member")).to_be_focused()
    dialog.get_by_role("button", name="Remove 1 member").click()

    # The tables and the history refresh after the removal; none of that brings the dialog back.
    expect(page.locator("#history-panel")).to_contain_text(f"hana removed 1 member from {team.name}")
    expect(page.locator("#users-panel")).not_to_contain_text(member.email)
    settled(page)
    expect(dialog).to_be_hidden()
    expect(page.locator("#banner [data-autofocus]")).to_be_focused()
    assert focused_text(page) == f"Removed {member.email}."
    assert not Membership.objects.filter(group=team, user=member).exists()
    assert AuditEntry.objects.filter(action="members.remove").count() == 1


def test_cancelling_the_dialog_returns_focus_to_the_remove_link(
    page, live_server, workspace, help_desk_account
):
    team = a_team(workspace)
    member = team.memberships.order_by("user__email").first().user
    sign_in(page, live_server, "hana")
    open_group(page, live_server, team)
    remove = page.get_by_role("link", name=f"Remove {member.email}")

    remove.click()
    expect(page.locator("#member-dialog")).to_be_visible()
    page.keyboard.press("Escape")

    expect(page.locator("#member-dialog")).to_be_hidden()
    expect(remove).to_be_focused()
    assert Membership.objects.filter(group=team, user=member).exists()


def test_remove_selected_by_keyboard(page, live_server, workspace, help_desk_account):
    team = a_team(workspace)
    first, second = [m.user.email for m in team.memberships.order_by("user__email")[:2]]
    sign_in(page, live_server, "hana")
    open_group(page, live_server, team)

    page.get_by_label(f"Select {first}").focus()
    page.keyboard.press("Space")
    page.get_by_label(f"Select {second}").focus()
    page.keyboard.press("Space")
    expect(page.get_by_label(f"Select {second}")).to_be_checked()
    remove_selected = page.locator("#users-panel").get_by_role("button", name="Remove 2 selected…")
    remove_selected.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#member-dialog")
    expect(dialog.get_by_role("button", name="Remove 2 members")).to_be_focused()
    # Cancel sits beside the button, and names are listed one a line.
    expect(dialog.locator(".actions").get_by_role("button", name="Cancel")).to_be_visible()
    page.keyboard.press("Enter")

    expect(page.locator("#history-panel")).to_contain_text(f"hana removed 2 members from {team.name}")
    settled(page)
    expect(dialog).to_be_hidden()
    assert focused_text(page) == f"Removed {first}, {second}."
    # Enter again does nothing more: no second attempt, no refused entry.
    page.keyboard.press("Enter")
    settled(page)
    expect(dialog).to_be_hidden()
    assert not Membership.objects.filter(group=team, user__email__in=[first, second]).exists()
    assert list(AuditEntry.objects.filter(action="members.remove").values_list("status", flat=True)) == [
        "succeeded"
    ]


def test_remove_whose_answer_is_lost_closes_the_dialog_when_reading_back_shows_it_applied(
    page, live_server, workspace, help_desk_account
):
    team = a_team(workspace)
    member = team.memberships.order_by("user__email").first().user
    sign_in(page, live_server, "hana")
    open_group(page, live_server, team)
    page.get_by_role("link", name=f"Remove {member.email}").click()
    dialog = page.locator("#member-dialog")
    expect(dialog).to_be_visible()

    inject_fault("remove_users_from_user_group", "applied-500")
    dialog.get_by_role("button", name="Remove 1 member").click()

    expect(page.locator("#banner")).to_contain_text("Reading the group back shows it was applied.")
    expect(page.locator("#users-panel")).not_to_contain_text(member.email)
    settled(page)
    expect(dialog).to_be_hidden()
    expect(page.locator("#banner [data-autofocus]")).to_be_focused()
    assert not Membership.objects.filter(group=team, user=member).exists()
    assert not AuditEntry.objects.filter(status="refused").exists()


def test_replace_members_with_a_diff_preview(page, live_server, workspace, help_desk_account):
    team = a_team(workspace)
    keep = team.memberships.order_by("user__email").first().user.email
    sign_in(page, live_server, "hana")
    open_group(page, live_server, team)

    page.get_by_role("link", name="Replace all members…").click()
    page.get_by_label("The complete list of members").fill(f"{keep}\nonly.newcomer@partner.example")
    page.get_by_role("button", name="Preview changes").click()

    expect(page.get_by_role("heading", name="To add (1)")).to_be_visible()
    expect(page.locator(".email-list.added")).to_contain_text("only.newcomer@partner.example")
    screenshot(page, "replace-preview")
    page.get_by_role("button", name=re.compile(r"^Apply: add 1, remove \d+$")).click()

    expect(page.locator("#banner")).to_contain_text("Members replaced")
    assert set(team.memberships.values_list("user__email", flat=True)) == {keep}
    assert list(team.invites.values_list("email", flat=True)) == ["only.newcomer@partner.example"]


def test_add_a_permission_rename_and_see_it_in_history(page, live_server, workspace, admin_account):
    team = a_team(workspace)
    sign_in(page, live_server, "ada")
    open_group(page, live_server, team)

    page.get_by_role("link", name="Add a permission").click()
    page.get_by_label("Role").select_option(label="Tracking Plan Admin")
    page.get_by_label("Resource type").select_option("SOURCE")
    page.get_by_label("Resource ids").fill("srcTracking1")
    page.get_by_role("button", name="Grant").click()
    expect(page.get_by_text("Not found in this workspace: srcTracking1 (Source)").first).to_be_visible()
    page.get_by_label("Grant anyway").check()
    page.get_by_role("button", name="Grant").click()
    expect(page.locator(".permission-list").first).to_contain_text("Tracking Plan Admin")
    assert GroupPermission.objects.filter(group=team, role__name="Tracking Plan Admin").exists()

    page.get_by_role("link", name="Rename").click()
    page.get_by_label("Name").fill("Renamed in the browser")
    page.get_by_role("button", name="Save name").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Renamed in the browser")
    history = page.locator("#history-panel")
    expect(history).to_contain_text(f"ada renamed {team.name} to Renamed in the browser")
    expect(history).to_contain_text(f"ada granted Tracking Plan Admin to {team.name}")


def test_create_then_delete_with_typed_confirmation(page, live_server, workspace, admin_account):
    sign_in(page, live_server, "ada")
    page.get_by_role("link", name="New group").click()
    page.get_by_label("Name").fill("Launch Squad")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Launch Squad")
    page.get_by_label("Emails to add").fill("someone@partner.example")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#invites-panel")).to_contain_text("someone@partner.example")

    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_text("1 member (users and pending invites) will lose the access")).to_be_visible()
    page.get_by_label("Type the group's name to confirm").fill("launch squad")
    page.get_by_role("button", name="Delete this group").click()
    expect(page.get_by_text("Type the group's name exactly as shown: Launch Squad")).to_be_visible()
    assert UserGroup.objects.filter(name="Launch Squad").exists()
    page.get_by_label("Type the group's name to confirm").fill("Launch Squad")
    page.get_by_role("button", name="Delete this group").click()

    expect(page.get_by_text("Deleted the group Launch Squad.")).to_be_visible()
    assert not UserGroup.objects.filter(name="Launch Squad").exists()
    assert not Invite.objects.filter(email="someone@partner.example").exists()


def test_viewer_sees_no_forms(page, live_server, workspace, viewer_account):
    sign_in(page, live_server)
    open_group(page, live_server, workspace["All Employees"])

    expect(page.get_by_label("Emails to add")).to_have_count(0)
    expect(page.get_by_role("link", name="Rename")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove selected…")).to_have_count(0)
    expect(page.get_by_role("link", name="New group")).to_have_count(0)


def test_audit_log_lists_changes_and_exports_csv(page, live_server, workspace, help_desk_account):
    team = a_team(workspace)
    sign_in(page, live_server, "hana")
    open_group(page, live_server, team)
    page.get_by_label("Emails to add").fill("audited.person@partner.example")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-members-form .alert-success")).to_be_visible()

    page.get_by_role("link", name="Audit log").click()
    row = page.get_by_role("row").filter(has_text=f"hana added 1 member to {team.name}")
    expect(row).to_contain_text("Succeeded")
    page.get_by_label("Actor").fill("nobody")
    expect(page.locator("#audit-table")).to_contain_text("No entries match.")
    page.get_by_label("Actor").fill("hana")
    expect(row).to_be_visible()
    screenshot(page, "audit-log")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(download_info.value.path().read_text(encoding="utf-8"))))
    assert [r["summary"] for r in rows] == [f"hana added 1 member to {team.name}"]
    assert "audited.person@partner.example" in rows[0]["details"]

    row.get_by_role("link", name=f"hana added 1 member to {team.name}").click()
    expect(page.get_by_text("Invited (not yet workspace users) (1)")).to_be_visible()
    expect(page.get_by_text("audited.person@partner.example")).to_be_visible()
