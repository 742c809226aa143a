"""The change pipeline seen from the pages: refusals on record, rules that offer a request,
outcomes Segment did not confirm, and privileged groups."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from groups_app.models import AuditEntry, ChangeProposal
from groups_app.services.mirror.sync import sync_workspace
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Invite, Role, UserGroup
from tests.factories import administrator, help_desk

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true", "HX-Target": "add-members-form"}


@pytest.fixture
def team(db):
    Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    return UserGroup.objects.create(id="groupTeam0000000000000000001", name="Team")


@pytest.fixture
def owners(db):
    owner = Role.objects.get_or_create(id="roleOwner00000000000000000001", name="Workspace Owner")[0]
    group = UserGroup.objects.create(id="groupOwners00000000000000001", name="Owners")
    GroupPermission.objects.create(group=group, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    return group


def html(response):
    return response.content.decode()


def add_url(group):
    return reverse("groups:members-add", args=[group.id])


def test_adding_yourself_is_refused_audited_and_offers_a_request(client, team):
    client.force_login(help_desk(username="hana", email="hana@example.com"))

    response = client.post(add_url(team), {"emails": "hana@example.com"}, headers=HTMX)

    page = html(response)
    assert response.status_code == 422
    assert "You cannot add yourself to a group; request access instead" in page
    assert f'href="/requests/new/?group={team.id}"' in page and "Request access instead" in page
    assert not Invite.objects.exists()
    entry = AuditEntry.objects.get()
    assert entry.status == AuditEntry.Status.REFUSED and entry.actor_username == "hana"


def test_help_desk_sees_privileged_groups_marked_and_is_refused_with_an_offer(client, owners):
    client.force_login(help_desk(username="hana"))
    sync_workspace(trigger="test")

    listing = html(client.get(reverse("groups:list")))
    detail = html(client.get(reverse("groups:detail", args=[owners.id])))
    response = client.post(add_url(owners), {"emails": "new@example.com"}, headers=HTMX)

    assert re.search(r"Owners</a>\s*<span class=\"badge badge-privileged\"", listing)
    assert 'class="badge badge-privileged"' in detail
    assert response.status_code == 422 and "Owners is a privileged group" in html(response)
    assert "Request access instead" in html(response)
    assert AuditEntry.objects.get().status == AuditEntry.Status.REFUSED


def test_an_outcome_segment_did_not_confirm_is_read_back_and_shown(client, team, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    client.force_login(help_desk(username="hana"))
    inject_fault("add_users_to_user_group", "applied-500")

    response = client.post(
        add_url(team), {"emails": "new@example.com", "submission_key": "k" * 32}, headers=HTMX
    )

    page = html(response)
    assert "Segment did not confirm the change. Reading the group back shows it was applied." in page
    assert "See the audit entry" in page
    assert "members-changed" in response["HX-Trigger-After-Settle"]  # the tables re-read themselves
    assert Invite.objects.filter(email="new@example.com").count() == 1


def test_a_resubmitted_form_whose_outcome_was_unknown_is_never_resent(client, team, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    client.force_login(help_desk(username="hana"))
    inject_fault("add_users_to_user_group", "hang")
    settings.SEGMENT_READ_TIMEOUT = 0.05
    settings.SANDBOX_HANG_SECONDS = 1
    data = {"emails": "new@example.com", "submission_key": "a" * 32}
    client.post(add_url(team), data, headers=HTMX)

    again = client.post(add_url(team), data, headers=HTMX)

    assert "already submitted and Segment did not confirm it; it was not sent again" in html(again)
    assert AuditEntry.objects.filter(action="members.add", status="unknown").count() == 1


def test_a_form_not_applied_gets_a_new_key_so_it_can_be_sent_again_on_purpose(client, team, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    client.force_login(help_desk(username="hana"))
    inject_fault("add_users_to_user_group", "503")
    data = {"emails": "new@example.com", "submission_key": "b" * 32}

    response = client.post(add_url(team), data, headers=HTMX)

    assert "it was not applied; you can submit it again" in html(response)
    new_key = re.search(r'name="submission_key" value="([0-9a-f]+)"', html(response)).group(1)
    assert new_key != "b" * 32
    client.post(add_url(team), {**data, "submission_key": new_key}, headers=HTMX)
    assert Invite.objects.filter(email="new@example.com").exists()


def test_a_form_left_pending_by_a_dead_process_no_longer_blocks_it(client, team, monkeypatch):
    client.force_login(help_desk(username="hana"))
    dead = AuditEntry.objects.create(
        actor_username="hana",
        action="members.add",
        group_id=team.id,
        summary="hana added 1 member to Team",
        details={"emails": ["new@example.com"]},
        submission_key="c" * 32,
    )
    # Later: no request lives this long, so the process that wrote it is gone.
    monkeypatch.setattr(
        "groups_app.services.reconcile.abandoned_before", lambda: timezone.now() + timedelta(seconds=1)
    )

    response = client.post(
        add_url(team), {"emails": "new@example.com", "submission_key": "c" * 32}, headers=HTMX
    )

    dead.refresh_from_db()
    assert dead.status == AuditEntry.Status.UNKNOWN and dead.resolution == "not_applied"
    assert "it was not applied; you can submit it again" in html(response)


def test_a_second_administrator_approves_a_proposed_privileged_grant_from_the_group_page(client, team):
    ada, bea = administrator(username="ada"), administrator(username="bea")
    client.force_login(ada)
    form = html(client.get(reverse("groups:permissions-add", args=[team.id])))
    key = re.search(r'name="submission_key" value="([0-9a-f]+)"', form).group(1)

    proposed = client.post(
        reverse("groups:permissions-add", args=[team.id]),
        {
            "role": "roleOwner00000000000000000001",
            "resource_type": "WORKSPACE",
            "resource_ids": "ws1[environment=prod]",
            "submission_key": key,
        },
        follow=True,
    )

    assert "needs a second Administrator" in html(proposed)
    assert "You proposed this; another Administrator must decide it." in html(proposed)
    proposal = ChangeProposal.objects.get()
    client.force_login(bea)
    page = html(client.get(reverse("groups:detail", args=[team.id])))
    assert "Waiting for a second Administrator" in page and "environment=prod" in page

    client.post(reverse("groups:proposal-decide", args=[team.id, proposal.pk, "approve"]))

    (grant,) = GroupPermission.objects.filter(group=team)
    assert grant.resources == [
        {"id": "ws1", "type": "WORKSPACE", "labels": [{"key": "environment", "value": "prod"}]}
    ]
