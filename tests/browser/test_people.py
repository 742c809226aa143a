"""People, as Help desk uses it: find someone, see their access, take them out of groups."""

import re

from playwright.sync_api import expect

from groups_app.models import AuditEntry, Job
from groups_app.services.jobs import person_change_start
from groups_app.services.people import person_keys
from sandbox.models import Invite, Membership, UserGroup, WorkspaceUser
from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_accessibility import axe_problems, sideways_scroll
from tests.jobs import run_jobs


def a_person_in_two_plain_groups(workspace):
    """A user in at least two groups other than All Employees, and which two."""
    for user in WorkspaceUser.objects.order_by("email"):
        groups = [
            m.group
            for m in Membership.objects.filter(user=user).select_related("group")
            if m.group.name != "All Employees"
            and not m.group.permissions.filter(role__name="Workspace Owner").exists()
        ]
        if len(groups) >= 2:
            return user, groups[:2]
    raise AssertionError("the seeded workspace has nobody in two groups")


def test_help_desk_finds_a_person_and_removes_them_from_two_groups(
    page, live_server, workspace, help_desk_account
):
    user, (first, second) = a_person_in_two_plain_groups(workspace)
    sign_in(page, live_server, "hana")

    page.get_by_role("link", name="People").click()
    page.get_by_label("Search by email or name").fill(user.name)  # searched as you type
    expect(page.locator("#people-table caption")).to_contain_text(f"matching “{user.name}”")
    page.get_by_role("link", name=user.email).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(user.name)
    page.get_by_label(f"Select {first.name}").check()
    page.get_by_label(f"Select {second.name}").check()
    page.get_by_role("button", name="Remove from selected groups…").click()

    expect(page.get_by_role("heading", name=f"Remove {user.email} from 2 groups?")).to_be_visible()
    assert Membership.objects.filter(user=user, group__in=[first, second]).count() == 2  # nothing yet
    screenshot(page, "person-remove-confirm")
    page.get_by_role("button", name="Remove from 2 groups").click()

    # The request answers at once with the job's page; the worker has not sent anything yet.
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Remove {user.email} from 2 groups")
    expect(page.locator("#banner .alert-success")).to_be_focused()  # read out: where the person is
    expect(page.locator("#banner .alert-success")).to_contain_text("you can leave this page")
    progress = page.locator("#job-progress")
    expect(progress).to_contain_text("0 of 2")
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    assert Membership.objects.filter(user=user, group__in=[first, second]).count() == 2
    assert axe_problems(page) == []
    screenshot(page, "job-queued")

    run_jobs()  # the worker

    expect(progress).to_contain_text("2 of 2")  # the page follows the job by itself
    expect(progress).to_contain_text(f"Removed from {first.name}.")
    expect(progress).to_contain_text(f"Removed from {second.name}.")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    screenshot(page, "job-finished")
    assert not Membership.objects.filter(user=user, group__in=[first, second]).exists()
    removals = AuditEntry.objects.filter(action="members.remove", status="succeeded", actor_username="hana")
    assert sorted(e.group_id for e in removals) == sorted([first.id, second.id])
    page.get_by_role("link", name=f"#{removals.get(group_id=first.id).pk} for {first.name}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"hana removed 1 member from {first.name}")


def test_a_running_job_at_phone_width_can_be_cancelled(page, live_server, workspace, help_desk_account):
    user, groups = a_person_in_two_plain_groups(workspace)
    job = person_change_start(
        actor=help_desk_account,
        kind=Job.Kind.PERSON_REMOVE,
        email=user.email,
        group_ids=[g.id for g in groups],
    ).job
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/jobs/{job.pk}/")

    expect(page.get_by_role("progressbar", name="Groups done")).to_be_visible()
    assert sideways_scroll(page) == 0 and axe_problems(page) == []
    page.get_by_role("button", name="Cancel").click()

    expect(page.locator("#banner")).to_contain_text("Cancelled")
    expect(page.locator("#job-progress")).to_contain_text("Cancelled")
    assert Membership.objects.filter(user=user, group__in=groups).count() == 2
    assert AuditEntry.objects.get(action="job.cancel").actor_username == "hana"


def test_select_all_ticks_every_group_of_the_person(page, live_server, workspace, admin_account):
    user, _ = a_person_in_two_plain_groups(workspace)
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/people/{person_keys([user.email])[user.email]}/")

    page.get_by_label("Select every group").check()

    boxes = page.locator("#person-groups tbody input[type=checkbox]")
    assert boxes.count() >= 2
    for index in range(boxes.count()):
        expect(boxes.nth(index)).to_be_checked()
    expect(page.get_by_role("button", name=re.compile("Remove from selected groups"))).to_be_enabled()


def test_member_search_on_a_groups_page_follows_a_removal(page, live_server, workspace, help_desk_account):
    user, (group, _) = a_person_in_two_plain_groups(workspace)
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/groups/{group.id}/")

    page.get_by_label("Search members").fill(user.email)
    results = page.locator("#member-search-results")
    expect(results).to_contain_text(user.email)
    results.get_by_role("link", name=f"Remove {user.email}").click()
    page.locator("#member-dialog").get_by_role("button", name=re.compile("^Remove")).click()

    expect(results).to_contain_text(f"No member's email or name contains “{user.email}”")
    assert not Membership.objects.filter(user=user, group=group).exists()


def plain_groups_without(user):
    """Groups `user` is not in that Help desk may change, with names that search well."""
    return [
        group
        for group in UserGroup.objects.exclude(memberships__user=user).order_by("name")
        if "<" not in group.name and not group.permissions.filter(role__name="Workspace Owner").exists()
    ]


def test_ticked_groups_survive_a_new_search_and_are_all_added(
    page, live_server, workspace, help_desk_account
):
    user, _ = a_person_in_two_plain_groups(workspace)
    first, second = plain_groups_without(user)[:2]
    sign_in(page, live_server, "hana")
    page.get_by_role("link", name="People").click()
    page.get_by_label("Search by email or name").fill(user.name)
    page.get_by_role("link", name=user.email).click()
    assert "@" not in page.url  # the person's page is addressed by key

    picker = page.locator("#add-candidates")
    page.get_by_label("Find groups by name").fill(first.name)  # found as you type
    picker.get_by_label(first.name, exact=True).check()
    page.get_by_label("Find groups by name").fill(second.name)

    expect(picker).to_contain_text("Selected (1)")
    expect(page.locator("#selected-groups").get_by_label(first.name, exact=True)).to_be_checked()
    page.locator("#found-groups").get_by_label(second.name, exact=True).check()
    page.get_by_label("Find groups by name").press("Enter")  # Enter finds again; it never adds
    expect(picker).to_contain_text("Selected (2)")
    assert not AuditEntry.objects.filter(action="members.add").exists()
    assert axe_problems(page) == []
    screenshot(page, "person-add-selected")
    page.get_by_role("button", name="Add to selected groups").click()

    progress = page.locator("#job-progress")
    expect(progress).to_contain_text("0 of 2")
    run_jobs()
    expect(progress).to_contain_text(f"{first.name}:")
    expect(progress).to_contain_text(f"{second.name}:")
    for group in (first, second):
        assert (
            Membership.objects.filter(user=user, group=group).exists()
            or Invite.objects.filter(group=group, email=user.email).exists()
        )


def test_ticked_groups_survive_a_new_search_without_javascript(
    browser, live_server, workspace, help_desk_account
):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    user, _ = a_person_in_two_plain_groups(workspace)
    first, second = plain_groups_without(user)[:2]
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/people/{person_keys([user.email])[user.email]}/")

    page.get_by_label("Find groups by name").fill(first.name)
    page.get_by_role("button", name="Find", exact=True).click()
    page.locator("#add-candidates").get_by_label(first.name, exact=True).check()
    page.get_by_label("Find groups by name").fill(second.name)
    page.get_by_role("button", name="Find", exact=True).click()

    expect(page.locator("#selected-groups").get_by_label(first.name, exact=True)).to_be_checked()
    expect(page.locator("#found-groups").get_by_label(second.name, exact=True)).not_to_be_checked()
    context.close()


def test_removing_from_no_group_says_so_with_focus_on_the_message(
    page, live_server, workspace, help_desk_account
):
    user, _ = a_person_in_two_plain_groups(workspace)
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/people/{person_keys([user.email])[user.email]}/")

    page.get_by_role("button", name="Remove from selected groups…").click()

    message = page.get_by_role("alert").filter(has_text="Choose at least one group.")
    expect(message).to_be_focused()
    assert not Job.objects.exists()


def test_copying_someones_access_opens_on_the_difference_and_reopens_as_the_persons_page(
    page, live_server, workspace, help_desk_account
):
    source, (first, _) = a_person_in_two_plain_groups(workspace)
    target = next(
        user
        for user in WorkspaceUser.objects.order_by("email")
        if user != source and not Membership.objects.filter(user=user, group=first).exists()
    )
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/people/{person_keys([target.email])[target.email]}/")

    page.get_by_label("Copy the groups of").fill(source.email)
    page.get_by_role("button", name="Show the difference").click()

    preview = page.locator("#copy-preview")
    expect(preview).to_be_focused()  # a full page load: the difference is where reading starts
    expect(preview).to_contain_text(f"+ {first.name}")
    assert source.email not in page.url
    page.goto(page.url)  # the form's address, opened again as a page: the person's page, at the form
    expect(page.get_by_role("heading", level=1)).to_contain_text(target.name)
    assert page.url.endswith("/#person-copy")
