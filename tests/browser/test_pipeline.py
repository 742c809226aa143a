"""The change pipeline in the browser: labels survive Edit all, nobody adds themselves, and an
approval interrupted by a dead process recovers."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from groups_app.models import AccessRequest
from sandbox.models import GroupPermission, Role, UserGroup
from tests.browser.conftest import screenshot, sign_in


def test_edit_all_on_a_labelled_grant_keeps_the_label(page, live_server, workspace, admin_account):
    group = UserGroup.objects.create(name="Prod Readers")
    member = Role.objects.get(name="Workspace Member")
    GroupPermission.objects.create(
        group=group,
        role=member,
        resources=[{"id": "ws1", "type": "WORKSPACE", "labels": [{"key": "environment", "value": "prod"}]}],
    )
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/groups/{group.id}/")
    expect(page.locator(".label-tag")).to_have_text("environment=prod")

    page.get_by_role("link", name="Edit all…").click()
    expect(page.get_by_label("Resource ids, row 1")).to_have_value("ws1[environment=prod]")
    page.get_by_label("Role, row 2").select_option(label="Source Admin")
    page.get_by_label("Resource type, row 2").select_option(label="Source")
    page.get_by_label("Resource ids, row 2").fill("srcNew1")
    page.get_by_role("button", name="Preview changes").click()
    expect(page.get_by_role("heading", name="Granted (1)")).to_be_visible()
    expect(page.get_by_role("heading", name="Unchanged (1)")).to_be_visible()
    screenshot(page, "permissions-edit-labels")
    expect(page.get_by_text("Not found in this workspace: srcNew1 (Source)")).to_be_visible()
    page.get_by_label("Grant anyway").check()
    page.get_by_role("button", name="Apply these changes").click()

    expect(page.get_by_text("Permissions replaced: 1 added, 0 removed.")).to_be_visible()
    expect(page.locator(".label-tag")).to_have_text("environment=prod")
    labelled = GroupPermission.objects.get(group=group, role=member)
    assert labelled.resources[0]["labels"] == [{"key": "environment", "value": "prod"}]


def test_help_desk_adding_themselves_is_refused_and_offered_a_request(
    page, live_server, workspace, help_desk_account
):
    help_desk_account.email = "hana@partner.example"
    help_desk_account.save()
    group = UserGroup.objects.create(name="Analysts")
    sign_in(page, live_server, "hana")
    page.goto(f"{live_server.url}/groups/{group.id}/")

    page.get_by_label("Emails to add").fill("hana@partner.example")
    page.get_by_role("button", name="Add", exact=True).click()

    form = page.locator("#add-members-form")
    expect(form).to_contain_text("You cannot add yourself to a group; request access instead")
    form.get_by_role("link", name="Request access instead…").click()
    expect(page.get_by_label("Group")).to_have_value(group.id)
    page.get_by_label("Why is the access needed?").fill("I run the analysts' dashboards")
    page.get_by_role("button", name="Send the request").click()
    expect(page.get_by_text("Requested access to Analysts for hana@partner.example.")).to_be_visible()


def test_an_approval_interrupted_by_a_dead_process_recovers(page, live_server, workspace, help_desk_account):
    from tests.factories import viewer

    group = UserGroup.objects.create(name="Recovering")
    vera = viewer(username="vera", email="vera.r@partner.example")
    long_ago = timezone.now() - timedelta(hours=1)
    stuck = AccessRequest.objects.create(
        group_id=group.id,
        group_name=group.name,
        email="vera.r@partner.example",
        requester=vera,
        requester_username="vera",
        justification="Reports",
        status=AccessRequest.Status.PROVISIONING,
        decided_at=long_ago,
        decided_by_username="hana",
        provisioning_started_at=long_ago,
    )
    sign_in(page, live_server, "hana")

    expect(page.get_by_role("link", name="Access requests")).to_contain_text("1")
    page.goto(f"{live_server.url}/requests/{stuck.pk}/")
    expect(page.get_by_text("Approved — provisioning", exact=True)).to_be_visible()
    page.get_by_role("button", name="Retry adding vera.r@partner.example").click()

    expect(page.get_by_text("Approved: vera.r@partner.example was invited to Recovering")).to_be_visible()
    stuck.refresh_from_db()
    assert stuck.status == AccessRequest.Status.PROVISIONED
