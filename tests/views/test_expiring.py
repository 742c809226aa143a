"""The Expiring access page: who sees what, renewing in bulk, bad input next to its field, a
member asking for a renewal, and the end date on the add-members form."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from groups_app.models import AccessRequest, GroupOwner
from groups_app.services.approvals.changes import members_add_or_file
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.factories import help_desk, viewer

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"


def html(response):
    return response.content.decode()


@pytest.fixture
def ending(db):
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    Membership.objects.create(
        group=readers, user=WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    )
    for name in ("bob", "carl"):
        WorkspaceUser.objects.create(name=name.title(), email=f"{name}@example.com")
    hana = help_desk(username="hana", email="hana@example.com")
    members_add_or_file(
        actor=hana,
        group_id=READERS,
        emails=["bob@example.com", "carl@example.com"],
        ends_on=timezone.localdate() + timedelta(days=3),
    )
    return list(AccessRequest.objects.order_by("email"))


def test_help_desk_renews_two_memberships_at_once(client, ending):
    client.force_login(help_desk(username="hal", email="hal@example.com"))
    new_end = timezone.localdate() + timedelta(days=90)

    page = client.get(reverse("groups:expiring"))
    response = client.post(
        reverse("groups:expiring"),
        {
            "ids": [r.pk for r in ending],
            "action": "renew",
            "ends_on": f"{new_end:%Y-%m-%d}",
            "reason": "Extended",
        },
        follow=True,
    )

    assert "bob@example.com" in html(page) and "carl@example.com" in html(page)
    assert "Renewed: 2 memberships." in html(response)
    assert set(AccessRequest.objects.values_list("needed_until", flat=True)) == {new_end}


def test_a_renewal_without_a_reason_is_refused_next_to_the_field(client, ending):
    client.force_login(help_desk(username="hal", email="hal@example.com"))

    response = client.post(
        reverse("groups:expiring"),
        {
            "ids": [ending[0].pk],
            "action": "renew",
            "ends_on": f"{timezone.localdate() + timedelta(days=9):%Y-%m-%d}",
        },
    )

    assert response.status_code == 422
    assert "Say why the access is still needed." in html(response)
    assert f'value="{ending[0].pk}" id="ids-{ending[0].pk}" checked' in html(response)


def test_a_viewer_sees_nothing_to_renew_and_cannot_send_ids(client, ending):
    client.force_login(viewer(username="vera", email="vera@example.com"))

    page = client.get(reverse("groups:expiring"))
    response = client.post(reverse("groups:expiring"), {"ids": [ending[0].pk], "action": "let_expire"})

    assert "bob@example.com" not in html(page)
    assert response.status_code == 422
    assert not AccessRequest.objects.filter(expiry_notices_stopped=True).exists()


def test_an_owner_lets_a_membership_expire(client, ending):
    olga = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=olga, email=olga.email, identity=olga.email
    )
    client.force_login(olga)

    client.post(reverse("groups:expiring"), {"ids": [ending[0].pk], "action": "let_expire"})

    ending[0].refresh_from_db()
    assert ending[0].expiry_notices_stopped


def test_the_member_asks_for_a_renewal_which_files_a_request(client, ending):
    client.force_login(viewer(username="bob", email="bob@example.com"))

    page = client.get(reverse("groups:expiring"))
    response = client.post(
        reverse("groups:renewal-ask", args=[ending[0].pk]),
        {
            f"ask{ending[0].pk}-ends_on": f"{timezone.localdate() + timedelta(days=30):%Y-%m-%d}",
            f"ask{ending[0].pk}-justification": "Still needed",
        },
        follow=True,
    )

    assert "Your access with an end date" in html(page)
    assert "Asked to renew your access to Readers." in html(response)
    assert AccessRequest.objects.filter(email="bob@example.com", status=AccessRequest.Status.PENDING).exists()


def test_the_add_members_form_takes_an_end_date(client, ending):
    client.force_login(help_desk(username="hal", email="hal@example.com"))
    end = timezone.localdate() + timedelta(days=5)
    WorkspaceUser.objects.create(name="Dora", email="dora@example.com")

    client.post(
        reverse("groups:members-add", args=[READERS]),
        {"emails": "dora@example.com", "ends_on": f"{end:%Y-%m-%d}", "submission_key": "k-dora"},
    )

    assert AccessRequest.objects.get(email="dora@example.com").needed_until == end
