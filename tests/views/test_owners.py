"""Owner pages: the owners panel of a group (Administrators set owners), "Groups I own", and an
owner deciding requests and changing members of their group through the same gates."""

import pytest
from django.urls import reverse

from groups_app.models import AccessRequest, AuditEntry, GroupOwner
from groups_app.services.approvals.access_requests import access_request_file
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.reviews import review_start
from sandbox.models import GroupPermission, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import administrator, viewer

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"
OTHERS = "groupOthers00000000000000001"


def html(response):
    return response.content.decode()


@pytest.fixture
def groups(db):
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    others = UserGroup.objects.create(id=OTHERS, name="Others")
    alice = WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    WorkspaceUser.objects.create(name="Bob", email="bob@example.com")
    Membership.objects.create(group=readers, user=alice)
    return readers, others


@pytest.fixture
def olga(db):
    user = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=user, email=user.email, identity="olga@example.com"
    )
    return user


@pytest.fixture
def bob(db):
    return viewer(username="bob", email="bob@example.com")


def test_an_administrator_adds_an_owner_on_the_groups_owners_panel(client, groups, bob):
    client.force_login(administrator(username="ada", email="ada@example.com"))

    response = client.post(
        reverse("groups:owners", args=[READERS]),
        {"owner": "bob@example.com"},
        headers={"HX-Request": "true", "HX-Target": "owners-panel"},
    )

    assert response.status_code == 200
    assert "<html" not in html(response)
    assert "bob (bob@example.com)" in html(response)
    assert GroupOwner.objects.get().user == bob


def test_a_bad_owner_is_shown_next_to_the_field_and_nothing_is_set(client, groups):
    client.force_login(administrator(username="ada", email="ada@example.com"))

    response = client.post(reverse("groups:owners", args=[READERS]), {"owner": "not an address@"})

    assert response.status_code == 422
    assert "is not an email address" in html(response)
    assert not GroupOwner.objects.exists()


def test_a_viewer_sees_the_owners_but_cannot_set_them(client, groups, olga, bob):
    client.force_login(bob)

    page = client.get(reverse("groups:owners", args=[READERS]))
    refused = client.post(reverse("groups:owners", args=[READERS]), {"owner": "bob@example.com"})

    assert "olga (olga@example.com)" in html(page)
    assert "Add owner" not in html(page)
    assert refused.status_code == 403 and "Only Administrators set the owners of groups." in html(refused)
    assert GroupOwner.objects.count() == 1
    assert AuditEntry.objects.get(action=AuditEntry.Action.OWNER_ADD).status == AuditEntry.Status.REFUSED


def test_the_group_page_includes_the_owners_panel(client, groups):
    client.force_login(administrator(username="ada", email="ada@example.com"))

    response = client.get(reverse("groups:detail", args=[READERS]))

    assert f'hx-get="{reverse("groups:owners", args=[READERS])}"' in html(response)


def test_groups_i_own_lists_the_groups_and_their_waiting_requests(client, groups, olga, bob):
    mine = access_request_file(actor=bob, group_id=READERS, justification="x").filed[0]
    access_request_file(actor=bob, group_id=OTHERS, justification="x")
    client.force_login(olga)

    response = client.get(reverse("groups:owned"))

    assert "Readers" in html(response)
    assert reverse("groups:request", args=[mine.pk]) in html(response)
    assert "Others" not in html(response)


def test_a_viewer_who_owns_the_group_approves_from_the_request_page(client, groups, olga, bob):
    filed = access_request_file(actor=bob, group_id=READERS, justification="x").filed[0]
    client.force_login(olga)

    page = client.get(reverse("groups:request", args=[filed.pk]))
    response = client.post(reverse("groups:request-decide", args=[filed.pk, "approve"]), follow=True)

    assert reverse("groups:request-decide", args=[filed.pk, "approve"]) in html(page)
    assert "Approved: bob@example.com was added to Readers." in html(response)
    filed.refresh_from_db()
    assert filed.status == AccessRequest.Status.PROVISIONED


def test_the_same_viewer_cannot_open_or_approve_a_request_for_a_group_they_do_not_own(
    client, groups, olga, bob
):
    filed = access_request_file(actor=bob, group_id=OTHERS, justification="x").filed[0]
    client.force_login(olga)

    assert client.get(reverse("groups:request", args=[filed.pk])).status_code == 404
    assert client.post(reverse("groups:request-decide", args=[filed.pk, "approve"])).status_code == 404
    filed.refresh_from_db()
    assert filed.status == AccessRequest.Status.PENDING


def test_an_owner_passes_the_members_gate_of_their_group_only(client, groups, olga):
    client.force_login(olga)

    own = client.post(reverse("groups:members-add", args=[READERS]), {"emails": "bob@example.com"})
    other = client.post(reverse("groups:members-add", args=[OTHERS]), {"emails": "bob@example.com"})

    assert own.status_code in (200, 302)
    assert Membership.objects.filter(group_id=READERS, user__email="bob@example.com").exists() or (
        UserGroup.objects.get(id=READERS).invites.filter(email="bob@example.com").exists()
    )
    assert other.status_code == 403
    assert AuditEntry.objects.filter(group_id=OTHERS, status=AuditEntry.Status.REFUSED).exists()


def test_an_owner_decides_the_review_of_their_group_but_not_of_another(client, groups, olga):
    ada = administrator(username="ada", email="ada@example.com")
    mine = review_start(actor=ada, group_id=READERS).review
    other = review_start(actor=ada, group_id=OTHERS).review
    client.force_login(olga)
    item = mine.items.get()

    decided = client.post(reverse("groups:review-decide", args=[mine.pk, item.pk]), {"decision": "keep"})
    refused = client.post(reverse("groups:review-complete", args=[other.pk]))

    item.refresh_from_db()
    assert decided.status_code in (200, 302) and item.decision == "keep"
    assert refused.status_code == 403
    assert AuditEntry.objects.filter(action=AuditEntry.Action.REVIEW_COMPLETE, status="refused").exists()


def test_without_owners_a_privileged_groups_requests_are_said_to_go_to_administrators(client, groups):
    role = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    GroupPermission.objects.create(group=groups[1], role=role, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    sync_workspace(trigger="test")
    client.force_login(administrator(username="ada", email="ada@example.com"))

    plain = html(client.get(reverse("groups:owners", args=[READERS])))
    privileged = html(client.get(reverse("groups:owners", args=[OTHERS])))

    assert "requests for this group go to Help desk and Administrators." in plain
    assert "requests for this group go to Administrators (it is privileged)." in privileged
