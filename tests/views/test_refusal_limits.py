"""Refused attempts cannot flood the audit log: per account, the first REFUSED_ATTEMPTS_PER_MINUTE
of a minute are recorded one by one; beyond that the answer is 429 and one entry counts the rest.
A group's History panel keeps its real changes in sight however many refusals there are."""

import pytest
from django.urls import reverse

from groups_app.models import AuditEntry, RefusalTally
from groups_app.services.audit import record_completed
from sandbox.models import Invite, UserGroup
from tests.clock import frozen_clock
from tests.factories import UserFactory, administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

GROUP = "groupFlooded000000000000001"
HISTORY = {"HX-Request": "true", "HX-Target": "history-panel"}


@pytest.fixture
def clock(monkeypatch):
    return frozen_clock(monkeypatch)  # 10:00:05 UTC


def add_members(client, group_id=GROUP, **extra):
    return client.post(reverse("groups:members-add", args=[group_id]), {"emails": "eve@example.com"}, **extra)


def test_sixty_refused_posts_leave_ten_entries_then_answer_429_and_are_counted_once(client, clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 10
    client.force_login(UserFactory(username="mallory"))  # signed in, no role

    answers = [add_members(client) for _ in range(60)]

    assert [answer.status_code for answer in answers] == [403] * 10 + [429] * 50
    assert {answer["Retry-After"] for answer in answers[10:]} == {"55"}  # the rest of the minute
    assert "Your role does not allow this change." in answers[-1].content.decode()
    assert AuditEntry.objects.filter(status="refused").count() == 10
    assert RefusalTally.objects.get().refused == 50

    clock.advance(minutes=1)
    next_minute = add_members(client)

    assert next_minute.status_code == 403  # a new minute, a new allowance
    aggregated = AuditEntry.objects.get(action=AuditEntry.Action.REFUSALS_OVER_LIMIT)
    assert aggregated.status == "refused" and aggregated.actor_username == "mallory"
    assert aggregated.summary == (
        "and 50 more refused attempts by mallory between 10:00 and 10:01 (UTC), not recorded one by one"
    )
    assert aggregated.details["refused"] == 50 and aggregated.details["limit_per_minute"] == 10
    assert AuditEntry.objects.filter(status="refused").count() == 10 + 1 + 1
    assert not RefusalTally.objects.exists()
    client.force_login(viewer(username="vera"))
    entry_page = client.get(reverse("groups:audit-entry", args=[aggregated.pk])).content.decode()
    assert (
        "Refused attempts not recorded one by one" in entry_page
        and "Refused attempts over the limit" in entry_page
    )


def test_the_count_is_written_once_the_minute_is_over_even_if_the_flood_stops(client, clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 2
    client.force_login(UserFactory(username="mallory"))
    for _ in range(5):
        add_members(client)
    client.force_login(viewer(username="vera"))
    client.get(reverse("groups:detail", args=[GROUP]), headers=HISTORY)
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.REFUSALS_OVER_LIMIT).exists()

    clock.advance(seconds=55)
    client.get(reverse("groups:detail", args=[GROUP]), headers=HISTORY)

    assert AuditEntry.objects.get(action=AuditEntry.Action.REFUSALS_OVER_LIMIT).details["refused"] == 3


def test_the_audit_log_shows_the_count_once_the_minute_is_over(client, clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 1
    client.force_login(UserFactory(username="mallory"))
    for _ in range(3):
        add_members(client)
    clock.advance(minutes=1)
    client.force_login(viewer(username="vera"))

    page = client.get(reverse("groups:audit")).content.decode()

    assert "and 2 more refused attempts by mallory between 10:00 and 10:01 (UTC)" in page


def test_the_limit_is_per_account(client, clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 3
    client.force_login(UserFactory(username="mallory"))
    for _ in range(4):
        add_members(client)

    client.force_login(UserFactory(username="oscar"))

    assert add_members(client).status_code == 403


def test_an_htmx_submission_over_the_limit_gets_the_banner_with_retry_after(client, clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 1
    client.force_login(UserFactory(username="mallory"))
    add_members(client)

    response = add_members(client, headers={"HX-Request": "true", "HX-Target": "add-members-form"})

    assert response.status_code == 429 and response["Retry-After"] == "55"
    assert response["HX-Retarget"] == "#banner"
    assert "<html" not in response.content.decode()
    assert "Too many refused attempts in a minute; try again in 55 seconds." in response.content.decode()


def test_an_over_limit_refusal_in_the_change_pipeline_keeps_its_reason(client, clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 1
    team = UserGroup.objects.create(id="groupTeam0000000000000000001", name="Team")
    client.force_login(help_desk(username="hana", email="hana@example.com"))
    headers = {"HX-Request": "true", "HX-Target": "add-members-form"}
    url = reverse("groups:members-add", args=[team.id])

    first = client.post(url, {"emails": "hana@example.com"}, headers=headers)
    second = client.post(url, {"emails": "hana@example.com"}, headers=headers)

    assert first.status_code == 422
    assert second.status_code == 429 and second["Retry-After"] == "55"
    assert "You cannot add yourself to a group" in second.content.decode()  # the reason is kept
    assert not Invite.objects.exists()
    assert AuditEntry.objects.filter(status="refused").count() == 1
    assert RefusalTally.objects.get().refused == 1


def test_the_history_panel_keeps_real_changes_in_sight_after_twenty_refusals(client, clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 100  # all twenty on record, one by one
    record_completed(
        actor=administrator(username="ada"),
        action=AuditEntry.Action.MEMBERS_ADD,
        summary="ada added 2 members to Flooded",
        group_id=GROUP,
    )
    clock.advance(seconds=1)
    client.force_login(UserFactory(username="mallory"))
    for _ in range(20):
        add_members(client)
    client.force_login(viewer(username="vera"))

    panel = client.get(reverse("groups:detail", args=[GROUP]), headers=HISTORY)

    page = panel.content.decode()
    assert "ada added 2 members to Flooded" in page
    assert "mallory" not in page
    link = f'<a href="/audit/?group={GROUP}&amp;status=refused">20 refused attempts</a>'
    assert link in page
    listed = client.get(reverse("groups:audit"), {"group": GROUP, "status": "refused"})
    assert "ada added 2 members" not in listed.content.decode()
    assert listed.context["page"].paginator.count == 20


def test_the_history_panel_counts_only_refusals_since_the_oldest_change_it_shows(client, clock, settings):
    ada = administrator(username="ada")
    client.force_login(UserFactory(username="mallory"))
    add_members(client)  # older than every change shown: not counted
    for number in range(10):
        clock.advance(seconds=1)
        record_completed(
            actor=ada, action=AuditEntry.Action.GROUP_RENAME, summary=f"rename {number}", group_id=GROUP
        )
    clock.advance(seconds=1)
    add_members(client)
    client.force_login(viewer(username="vera"))

    page = client.get(reverse("groups:detail", args=[GROUP]), headers=HISTORY).content.decode()

    assert "rename 0" in page and "rename 9" in page
    assert ">1 refused attempt</a>" in page
