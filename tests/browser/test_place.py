"""Keeping the person's place: the confirmation where they are, focus after every swap, selections
across both tables, and state that survives search, paging and Back/Forward."""

import csv
import io
import re

from playwright.sync_api import expect

from groups_app.models import AuditEntry
from sandbox.models import Invite, Membership
from tests.browser.conftest import sign_in


def test_removing_row_81_of_100_opens_a_modal_dialog_in_view_with_focus_and_escape_closes_it(
    page, live_server, workspace, help_desk_account
):
    group = workspace["All Employees"]
    member = group.memberships.order_by("user__email")[80].user
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/groups/{group.id}/?users_size=100")

    remove = page.get_by_role("link", name=f"Remove {member.email}")
    remove.click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    viewport = page.viewport_size
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]  # where the person is
    assert page.evaluate("document.activeElement.closest('dialog') !== null")
    page.keyboard.press("Escape")

    expect(dialog).to_be_hidden()
    expect(remove).to_be_focused()
    assert Membership.objects.filter(group=group, user=member).exists()


def test_remove_selected_counts_ticks_in_both_tables_and_select_all_ticks_a_page(
    page, live_server, workspace, help_desk_account
):
    group = workspace["All Employees"]
    user = group.memberships.order_by("user__email").first().user.email
    invite = group.invites.order_by("email").first().email
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/groups/{group.id}/?users_size=10&invites_size=10")

    page.get_by_label(f"Select {user}").check()
    page.get_by_label(f"Select {invite}").check()
    button = page.locator("#invites-panel").get_by_role("button", name="Remove 2 selected…")
    expect(button).to_be_visible()
    button.click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Remove 2 members from All Employees?")
    expect(dialog).to_contain_text(user)
    expect(dialog).to_contain_text(invite)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    page.get_by_label("Select every invite on this page").check()
    expect(page.locator("#users-panel").get_by_role("button", name="Remove 11 selected…")).to_be_visible()
    assert Invite.objects.filter(group=group).count() == 30


def test_nothing_selected_says_so_instead_of_removing_zero(page, live_server, workspace, help_desk_account):
    group = workspace["All Employees"]
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/groups/{group.id}/")

    page.locator("#users-panel").get_by_role("button", name="Remove selected…").click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Nothing selected")
    expect(dialog).not_to_contain_text("Remove 0")


def test_focus_returns_to_the_pager_link_used_and_moves_to_the_result_of_a_form(
    page, live_server, workspace, help_desk_account
):
    group = workspace["All Employees"]
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/groups/{group.id}/")

    page.locator("#users-next").click()
    expect(page.locator("#users-panel")).to_contain_text("26–50")
    expect(page.locator("#users-next")).to_be_focused()

    page.get_by_label("Emails to add").fill("focus.person@partner.example")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-members-form .alert-success")).to_be_focused()

    page.get_by_label("Emails to add").fill("not-an-address")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-members-form")).to_contain_text("not an email address")
    expect(page.get_by_label("Emails to add")).to_be_focused()


def test_sort_and_page_size_survive_a_search_and_back_restores_the_search_box(
    page, live_server, workspace, viewer_account
):
    sign_in(page, live_server, "vera")
    page.locator("#sort-members").click()
    expect(page.locator("#groups-table th[aria-sort='ascending']")).to_contain_text("Members")
    page.locator("#sort-members").click()  # descending
    expect(page.locator("#groups-table th[aria-sort='descending']")).to_contain_text("Members")
    page.get_by_label("Per page").select_option("50")
    expect(page).to_have_url(re.compile(r"size=50"))

    page.get_by_label("Search by name").fill("e")
    expect(page).to_have_url(re.compile(r"q=e"))

    assert "sort=members" in page.url and "dir=desc" in page.url and "size=50" in page.url
    expect(page.locator("#groups-table th[aria-sort='descending']")).to_contain_text("Members")
    page.goto(f"{live_server.url}/audit/")
    page.go_back()
    expect(page.get_by_label("Search by name")).to_have_value("e")
    expect(page.get_by_label("Per page")).to_have_value("50")


def test_audit_filters_survive_back_and_forward(page, live_server, workspace, viewer_account):
    AuditEntry.objects.create(
        actor_username="ada", action="group.create", summary="ada created Growth", status="succeeded"
    )
    AuditEntry.objects.create(
        actor_username="bob", action="group.create", summary="bob created Sales", status="failed"
    )
    sign_in(page, live_server, "vera")
    page.goto(f"{live_server.url}/audit/")

    page.get_by_label("Actor").fill("ada")
    page.get_by_label("Actor").press("Enter")
    expect(page.locator("#audit-table")).not_to_contain_text("bob created Sales")
    page.get_by_label("Outcome").select_option(label="Succeeded")
    expect(page).to_have_url(re.compile(r"status=succeeded"))
    page.goto(f"{live_server.url}/requests/")
    page.go_back()

    expect(page.get_by_label("Actor")).to_have_value("ada")
    expect(page.get_by_label("Outcome")).to_have_value("succeeded")
    expect(page.locator("#audit-table")).to_contain_text("ada created Growth")
    expect(page.locator("#audit-table")).not_to_contain_text("bob created Sales")


def test_resources_are_picked_by_name_with_a_search(page, live_server, workspace, admin_account):
    from sandbox.models import GroupPermission, Resource, UserGroup

    group = UserGroup.objects.create(name="Mobile Readers")
    ios = Resource.objects.get(type="SOURCE", name="iOS App")
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/groups/{group.id}/permissions/add/")

    page.get_by_label("Role").select_option(label="Source Read-only")
    page.get_by_label("Resource type").select_option(label="Source")
    expect(page.get_by_text("Snowflake Production")).to_be_hidden()  # another type
    page.get_by_label("Find by name").fill("ios")
    expect(page.get_by_label("Android App")).to_be_hidden()
    page.get_by_label("iOS App").check()
    page.get_by_role("button", name="Grant").click()

    expect(page.locator(".resource-name")).to_have_text("iOS App")
    assert GroupPermission.objects.get(group=group).resources == [{"id": ios.id, "type": "SOURCE"}]


def test_a_review_note_is_saved_with_the_decision_it_accompanies(page, live_server, workspace, admin_account):
    from groups_app.models import ReviewItem
    from groups_app.services.reviews import review_start

    team = next(
        g
        for name, g in workspace.items()
        if "<" not in name and g.memberships.exists() and name != "All Employees"
    )
    review = review_start(actor=admin_account, group_id=team.id).review
    item = review.items.order_by("is_invite", "email").first()
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/reviews/{review.pk}/")

    page.get_by_label(f"Note on {item.email}").fill("left the company in May")
    page.get_by_role("button", name=f"Remove {item.email}").click()
    expect(page.get_by_role("button", name=f"Remove {item.email}")).to_have_attribute("aria-pressed", "true")

    item.refresh_from_db()
    assert item.decision == ReviewItem.Decision.REMOVE and item.note == "left the company in May"
    page.reload()
    expect(page.get_by_label(f"Note on {item.email}")).to_have_value("left the company in May")


def test_replace_all_starts_from_the_members_and_can_empty_the_group_after_confirming(
    page, live_server, workspace, help_desk_account
):
    team = next(
        g
        for name, g in workspace.items()
        if "<" not in name and g.memberships.exists() and name != "All Employees"
    )
    first = team.memberships.order_by("user__email").first().user.email
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/groups/{team.id}/members/replace/")

    box = page.get_by_label("The complete list of members")
    expect(box).to_contain_text(first)
    box.fill("")
    page.get_by_role("button", name="Preview changes").click()
    expect(page.get_by_text("this removes every member and invite")).to_be_visible()
    page.get_by_role("button", name=re.compile(r"^Apply")).click()
    expect(page.get_by_text("Tick the box to confirm")).to_be_visible()
    assert team.memberships.exists()

    page.get_by_label("Yes, remove every member and invite of this group").check()
    page.get_by_role("button", name=re.compile(r"^Apply")).click()

    expect(page.get_by_text("Members replaced:")).to_be_visible()
    assert not team.memberships.exists() and not team.invites.exists()


def test_rename_in_place_puts_focus_in_the_name_field(page, live_server, workspace, admin_account):
    group = workspace["All Employees"]
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/groups/{group.id}/")

    page.get_by_role("link", name="Rename").click()

    expect(page.get_by_label("Name")).to_be_focused()


def history_length(page) -> int:
    return page.evaluate("history.length")


def test_typing_a_search_replaces_the_address_and_sorting_adds_a_history_entry(
    page, live_server, workspace, viewer_account
):
    sign_in(page, live_server, "vera")
    before = history_length(page)
    search = page.get_by_label("Search by name")

    for typed in ("e", "em", "emp"):
        search.fill(typed)
        expect(page).to_have_url(re.compile(rf"q={typed}(&|$)"))
    assert history_length(page) == before

    page.locator("#sort-members").click()
    expect(page).to_have_url(re.compile(r"sort=members"))
    assert history_length(page) == before + 1
    page.go_back()
    expect(page).to_have_url(re.compile(r"q=emp(&|$)"))
    expect(search).to_have_value("emp")


def test_typing_a_member_search_adds_no_history_entry(page, live_server, workspace, viewer_account):
    group = workspace["All Employees"]
    sign_in(page, live_server, "vera")
    page.goto(f"{live_server.url}/groups/{group.id}/")
    before = history_length(page)
    search = page.get_by_label("Search members")

    search.fill("a")
    expect(page.locator("#member-search-results caption")).to_contain_text("matching “a”")
    search.fill("zz-nobody")
    expect(page.locator("#member-search-results")).to_contain_text("No member's email or name contains")

    assert history_length(page) == before
    # The count, not the table, is what a screen reader hears.
    expect(page.locator("#live-status")).to_contain_text("No member's email or name contains “zz-nobody”")
    expect(page.locator("#member-search-results[aria-live]")).to_have_count(0)


def test_audit_export_carries_the_filter_just_applied(page, live_server, workspace, viewer_account):
    AuditEntry.objects.create(
        actor_username="ada", action="group.create", summary="ada created Growth", status="succeeded"
    )
    AuditEntry.objects.create(
        actor_username="adam", action="group.create", summary="adam created Sales", status="succeeded"
    )
    sign_in(page, live_server, "vera")
    page.goto(f"{live_server.url}/audit/")
    before = history_length(page)

    page.get_by_label("Actor").fill("ada")
    page.get_by_role("button", name="Filter").click()

    expect(page.locator("#audit-table")).not_to_contain_text("adam created Sales")  # a whole username
    expect(page.locator("#audit-count")).to_have_text("1 matching entry")
    export = page.get_by_role("link", name=re.compile("^Export CSV"))
    expect(export).to_have_attribute("href", re.compile(r"^/audit/export\.csv\?.*actor=ada(&|$)"))
    with page.expect_download() as download_info:
        export.click()
    rows = list(csv.DictReader(io.StringIO(download_info.value.path().read_text(encoding="utf-8"))))
    assert [row["summary"] for row in rows] == ["ada created Growth"]
    assert history_length(page) == before

    page.get_by_label("Outcome").select_option(label="Failed")
    expect(page.locator("#audit-table")).to_contain_text("No entries match.")
    expect(export).to_have_attribute("href", re.compile(r"status=failed"))


def test_focus_after_a_submit_goes_to_the_result_or_the_field_to_fix(
    page, live_server, workspace, admin_account
):
    sign_in(page, live_server, "ada")
    page.get_by_role("link", name="New group").click()
    page.get_by_label("Name").fill(" ")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name")).to_be_focused()

    page.get_by_label("Name").fill("Focus Squad")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Focus Squad")
    expect(page.locator("#banner [data-autofocus]")).to_be_focused()
    expect(page.locator("#banner [data-autofocus]")).to_have_text("Created the group Focus Squad.")

    page.get_by_role("link", name="Replace all members…").click()
    page.get_by_label("The complete list of members").fill("someone@partner.example")
    page.get_by_role("button", name="Preview changes").click()
    expect(page.locator("section[aria-labelledby='preview-heading']")).to_be_focused()
    expect(page.locator(".email-list.added")).to_contain_text("not seen in the workspace: invited")

    page.get_by_role("button", name="Apply: add 1, remove 0").click()
    expect(page.locator("#banner [data-autofocus]")).to_be_focused()
    expect(page.locator("#banner")).to_contain_text("Members replaced")
