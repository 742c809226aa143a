"""Access requests and reviews, as the people who use them would in the browser."""

from playwright.sync_api import expect

from groups_app.models import AuditEntry
from sandbox.models import Invite, Membership, UserGroup, WorkspaceUser
from tests.browser.conftest import screenshot, sign_in


def new_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    return context, context.new_page()


def a_team(workspace):
    return next(
        g
        for name, g in workspace.items()
        if name != "All Employees" and "<" not in name and g.memberships.exists()
    )


def test_viewer_requests_access_and_help_desk_approves(browser, live_server, workspace, transactional_db):
    from tests.factories import help_desk, viewer

    team = a_team(workspace)
    viewer(username="vera", email="vera.requester@partner.example")
    help_desk(username="hana", email="hana@example.com")

    context, page = new_page(browser)
    sign_in(page, live_server, "vera")
    page.get_by_role("link", name="Access requests").click()
    page.get_by_role("link", name="Request access").click()
    page.get_by_label("Group").select_option(label=team.name)
    page.get_by_label("Why is the access needed?").fill("Quarterly reporting")
    page.get_by_role("button", name="Send the request").click()
    expect(
        page.get_by_text(f"Requested access to {team.name} for vera.requester@partner.example.")
    ).to_be_visible()
    context.close()

    context, page = new_page(browser)
    sign_in(page, live_server, "hana")
    expect(page.get_by_role("link", name="Access requests")).to_contain_text("1")
    page.get_by_role("link", name="Access requests").click()
    page.get_by_role("link", name="vera.requester@partner.example").click()
    screenshot(page, "access-request")
    page.get_by_role("button", name="Approve and add vera.requester@partner.example").click()

    expect(
        page.get_by_text(f"Approved: vera.requester@partner.example was invited to {team.name}")
    ).to_be_visible()
    assert Invite.objects.filter(group=team, email="vera.requester@partner.example").exists()
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("row").filter(has_text="hana approved access")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=f"hana added 1 member to {team.name}")).to_be_visible()
    page.goto(f"{live_server.url}/groups/{team.id}/")
    expect(page.locator("#invites-panel")).to_contain_text("vera.requester@partner.example")
    context.close()


def test_help_desk_denies_with_a_reason(browser, live_server, workspace, transactional_db):
    from tests.factories import help_desk, viewer

    team = a_team(workspace)
    viewer(username="vera", email="vera@partner.example")
    help_desk(username="hana", email="hana@example.com")
    context, page = new_page(browser)
    sign_in(page, live_server, "vera")
    page.goto(f"{live_server.url}/requests/new/?group={team.id}")
    page.get_by_label("Why is the access needed?").fill("Curious")
    page.get_by_role("button", name="Send the request").click()
    context.close()

    context, page = new_page(browser)
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/requests/")
    page.get_by_role("link", name="vera@partner.example").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    page.get_by_label("Reason (sent to the requester)").fill("Ask your manager first")
    page.get_by_role("button", name="Deny").click()

    expect(page.get_by_text("Denied; the requester was told why.")).to_be_visible()
    expect(page.locator("dl.details")).to_contain_text("Ask your manager first")
    assert not Invite.objects.filter(email="vera@partner.example").exists()
    assert AuditEntry.objects.filter(action="request.deny", status="succeeded").exists()
    context.close()


def test_review_of_a_small_group_with_two_removals(page, live_server, transactional_db, admin_account):
    group = UserGroup.objects.create(name="Small Review Team")
    people = [
        WorkspaceUser.objects.create(name=f"Person {n}", email=f"person{n}@acme-corp.example")
        for n in range(4)
    ]
    for person in people:
        Membership.objects.create(group=group, user=person)
    Invite.objects.create(group=group, email="pending.person@partner.example")
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/groups/{group.id}/")

    page.get_by_role("button", name="Start a review").click()
    expect(page.locator("#review-progress")).to_contain_text("0 of 5 decided")
    expect(page.get_by_text("age unknown")).to_be_visible()
    page.get_by_role("button", name="Remove person1@acme-corp.example").click()
    expect(page.locator("#review-progress")).to_contain_text("1 of 5 decided")
    page.get_by_role("button", name="Remove pending.person@partner.example").click()
    expect(page.locator("#review-progress")).to_contain_text("2 of 5 decided")
    page.get_by_role("button", name="Keep all undecided on this page").click()
    expect(page.locator("#review-progress")).to_contain_text("5 of 5 decided")
    screenshot(page, "review")

    page.get_by_role("link", name="Complete the review…").click()
    expect(page.locator(".email-list")).to_contain_text("person1@acme-corp.example")
    expect(page.locator(".email-list")).to_contain_text("pending.person@partner.example (invite)")
    page.get_by_role("button", name="Complete and remove 2").click()

    expect(page.get_by_text("Review completed; 2 removed.")).to_be_visible()
    remaining = set(Membership.objects.filter(group=group).values_list("user__email", flat=True))
    assert remaining == {
        "person0@acme-corp.example",
        "person2@acme-corp.example",
        "person3@acme-corp.example",
    }
    assert not Invite.objects.filter(group=group).exists()
