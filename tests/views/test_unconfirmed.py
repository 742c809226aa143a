"""A change whose answer comes after the deadline: the page says what reading back found (or that
it is still unknown, with Check again), never "try again"."""

import pytest
from django.urls import reverse

from groups_app.models import AuditEntry
from sandbox.faults import inject_fault
from sandbox.models import UserGroup
from tests.factories import administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

GROUP = "groupSlow0000000000000000001"


@pytest.fixture
def slow_segment(settings):
    """Segment performs the change but answers after the request's whole deadline."""
    settings.SEGMENT_REQUEST_DEADLINE = 0.6
    settings.SEGMENT_READ_TIMEOUT = 5
    settings.SANDBOX_HANG_SECONDS = 0.8
    UserGroup.objects.create(id=GROUP, name="Old name")


@pytest.mark.parametrize("htmx", [True, False])
def test_a_rename_answered_after_the_deadline_reports_its_unknown_outcome_not_try_again(
    client, slow_segment, htmx
):
    client.force_login(administrator(username="ada", email="ada@example.com"))
    inject_fault("update_user_group", "hang", 1)
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "group-header"} if htmx else {}

    response = client.post(
        reverse("groups:rename", args=[GROUP]), {"name": "New name", "submission_key": "k1"}, **headers
    )

    page = response.content.decode()
    entry = AuditEntry.objects.get(action="group.rename")
    assert entry.status == AuditEntry.Status.UNKNOWN
    assert "Try again in a moment" not in page
    assert "Segment did not confirm the change" in page
    assert reverse("groups:audit-entry", args=[entry.pk]) in page
    assert UserGroup.objects.get().name == "New name"  # Segment did apply it


def test_check_again_reads_back_and_records_what_it_found(client, slow_segment):
    client.force_login(administrator(username="ada", email="ada@example.com"))
    inject_fault("update_user_group", "hang", 1)
    client.post(reverse("groups:rename", args=[GROUP]), {"name": "New name", "submission_key": "k1"})
    entry = AuditEntry.objects.get(action="group.rename")
    assert entry.is_unresolved
    page = client.get(reverse("groups:audit-entry", args=[entry.pk])).content.decode()
    assert "Check again now" in page

    response = client.post(reverse("groups:audit-entry-check", args=[entry.pk]), follow=True)

    entry.refresh_from_db()
    assert entry.resolution == AuditEntry.Resolution.APPLIED and entry.resolved_by == "ada"
    assert "Read back: applied." in response.content.decode()


def test_check_again_needs_the_role_that_makes_such_a_change(client, slow_segment):
    client.force_login(administrator(username="ada", email="ada@example.com"))
    inject_fault("update_user_group", "hang", 1)
    client.post(reverse("groups:rename", args=[GROUP]), {"name": "New name", "submission_key": "k1"})
    entry = AuditEntry.objects.get(action="group.rename")

    for person in (viewer(username="vera"), help_desk(username="hana")):
        client.force_login(person)
        assert (
            "Check again now"
            not in client.get(reverse("groups:audit-entry", args=[entry.pk])).content.decode()
        )
        assert client.post(reverse("groups:audit-entry-check", args=[entry.pk])).status_code == 403

    entry.refresh_from_db()
    assert entry.is_unresolved
