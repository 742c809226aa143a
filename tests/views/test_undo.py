"""The Undo page of an observed change: who sees it, its preview, applying it once."""

import pytest
from django.urls import reverse

from groups_app.models import AuditEntry
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.segment_client import get_client
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"


@pytest.fixture
def entry(db):
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    Membership.objects.create(
        group=readers, user=WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    )
    sync_workspace(trigger="baseline")
    get_client().remove_users_from_user_group(READERS, ["alice@example.com"])
    sync_workspace(trigger="test")
    return AuditEntry.objects.get(action=AuditEntry.Action.OBSERVED)


def html(response):
    return response.content.decode()


def test_the_entry_page_offers_undo_to_administrators_only(client, entry):
    client.force_login(administrator(username="ada", email="ada@example.com"))
    assert reverse("groups:audit-undo", args=[entry.pk]) in html(
        client.get(reverse("groups:audit-entry", args=[entry.pk]))
    )

    client.force_login(help_desk(username="hana", email="hana@example.com"))
    assert reverse("groups:audit-undo", args=[entry.pk]) not in html(
        client.get(reverse("groups:audit-entry", args=[entry.pk]))
    )
    assert client.get(reverse("groups:audit-undo", args=[entry.pk])).status_code == 403
    assert (
        client.post(reverse("groups:audit-undo", args=[entry.pk]), {"submission_key": "k1"}).status_code
        == 403
    )
    assert not Membership.objects.filter(group_id=READERS).exists()


def test_undo_previews_then_applies_once(client, entry):
    client.force_login(administrator(username="ada", email="ada@example.com"))

    preview = client.get(reverse("groups:audit-undo", args=[entry.pk]))
    assert "Re-add 1 removed outside Group Admin" in html(preview)
    assert "alice@example.com" in html(preview)

    done = client.post(reverse("groups:audit-undo", args=[entry.pk]), {"submission_key": "k1"})
    again = client.post(reverse("groups:audit-undo", args=[entry.pk]), {"submission_key": "k1"})

    assert done.status_code == 200 and "Undone: Readers" in html(done)
    assert Membership.objects.filter(group_id=READERS, user__email="alice@example.com").exists()
    assert again.status_code == 422
    assert AuditEntry.objects.filter(action=AuditEntry.Action.MEMBERS_ADD).count() == 1


def test_an_entry_that_is_not_an_observed_change_has_nothing_to_undo(client, entry):
    client.force_login(administrator(username="ada", email="ada@example.com"))
    other = AuditEntry.objects.create(actor_username="x", action=AuditEntry.Action.MEMBERS_ADD, summary="x")

    response = client.get(reverse("groups:audit-undo", args=[other.pk]))

    assert response.status_code == 404 and "Nothing to undo" in html(response)
