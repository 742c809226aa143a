"""A group's page painted from the mirror: no upstream call at first, "as of" and a live link,
then the live read (one htmx round trip) saying what differs from the copy."""

import pytest
from django.urls import reverse

from groups_app.services.segment_client import get_client
from sandbox.faults import inject_fault
from sandbox.models import Invite
from tests.services.test_mirror import Counting

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def detail_url(group):
    return reverse("groups:detail", args=[group.id])


@pytest.fixture
def counted(monkeypatch):
    client = get_client()
    counting = Counting(client)
    yield counting
    del client._request


def test_a_first_visit_is_painted_from_the_mirror_with_no_upstream_call(
    viewer_client, demo_workspace, counted
):
    group = demo_workspace["All Employees"]
    counted.calls.clear()

    page = viewer_client.get(detail_url(group)).content.decode()

    assert counted.calls == []
    assert (
        "From Group Admin&#x27;s copy of the workspace, as of" in page
        or "copy of the workspace, as of" in page
    )
    assert '<a href="?live=1">Show it live</a>' in page  # with JavaScript off
    assert 'hx-get="?live=1" hx-trigger="load" hx-target="#main" hx-select="#main"' in page
    assert f"{group.memberships.count()}</span> users" in page and "30 pending invites" in page
    assert "<strong>Workspace Member</strong>" in page  # the role's name, from the mirror
    assert f"1–25 of {group.memberships.count()}" in page and "1–25 of 30" in page


def test_the_first_paint_survives_segment_being_down(viewer_client, demo_workspace, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    for operation in ("get_user_group", "list_users_from_user_group", "list_roles"):
        inject_fault(operation, "503")

    response = viewer_client.get(detail_url(demo_workspace["All Employees"]))

    assert response.status_code == 200 and "Show it live" in response.content.decode()


def test_the_live_read_costs_three_calls_and_says_the_copy_agrees(viewer_client, demo_workspace, counted):
    group = demo_workspace["All Employees"]
    counted.calls.clear()

    page = viewer_client.get(detail_url(group), {"live": "1"}, headers={**HTMX, "HX-Target": "main"})

    assert sorted(path for _, path in counted.calls) == sorted(
        [f"/groups/{group.id}", f"/groups/{group.id}/users", f"/groups/{group.id}/invites"]
    )
    text = page.content.decode()
    assert "Live from Segment." in text and "agrees" in text
    assert "Show it live" not in text


def test_the_live_read_marks_what_differs_from_the_copy(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]
    Invite.objects.create(group=group, email="late@example.com")  # outside, after the last sync
    get_client().update_user_group(group.id, "Everyone")

    text = viewer_client.get(detail_url(group), {"live": "1", "invites_size": "50"}).content.decode()

    assert "Since Group Admin's copy of" in text
    assert "it was named “All Employees”" in text
    assert f"it had {group.memberships.count() + 30} members, now {group.memberships.count() + 31}" in text
    assert "not in the copy: late@example.com" in text


def test_a_group_the_mirror_does_not_hold_is_read_live(viewer_client, demo_workspace):
    created = get_client().create_user_group("Made elsewhere")

    text = viewer_client.get(reverse("groups:detail", args=[created.id])).content.decode()

    assert "Made elsewhere" in text and "Show it live" not in text
