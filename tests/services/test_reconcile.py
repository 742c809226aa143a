"""Reconciliation: entries whose outcome Segment did not confirm are read back, once, as 'system'."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from groups_app.models import AuditEntry
from groups_app.segment import deadline
from groups_app.services.errors import ChangeOutcomeUnknown
from groups_app.services.membership import group_members_add
from groups_app.services.reconcile import reconcile_changes
from sandbox.faults import inject_fault
from sandbox.models import Invite, UserGroup
from tests.factories import help_desk

pytestmark = pytest.mark.django_db

GROUP = "groupRecon000000000000000001"


@pytest.fixture
def group(db):
    return UserGroup.objects.create(id=GROUP, name="Reconciled")


def test_an_unknown_outcome_left_unresolved_is_resolved_later_as_system(group, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", "applied-500")
    with deadline(0.5), pytest.raises(ChangeOutcomeUnknown, match="will be checked automatically"):
        group_members_add(actor=help_desk(username="hana"), group_id=GROUP, emails=["x@example.com"])
    assert AuditEntry.objects.get().is_unresolved

    out = StringIO()
    call_command("reconcile_changes", stdout=out)

    entry = AuditEntry.objects.get()
    assert entry.resolution == "applied" and entry.resolved_by == "system"
    assert entry.evidence["applied"] == ["x@example.com"]
    assert "Reconciled: 1 applied." in out.getvalue()
    call_command("reconcile_changes", stdout=StringIO())  # safe to repeat: resolved once
    assert AuditEntry.objects.get().resolved_at == entry.resolved_at


def test_entries_left_pending_by_a_dead_process_are_settled(group, monkeypatch):
    change = AuditEntry.objects.create(
        actor_username="hana",
        action="members.add",
        group_id=GROUP,
        summary="hana added 1 member to Reconciled",
        details={"emails": ["y@example.com"]},
    )
    local = AuditEntry.objects.create(actor_username="hana", action="request.deny", summary="hana denied")
    cutoff = timezone.now() + timedelta(microseconds=1)
    fresh = AuditEntry.objects.create(
        actor_username="hana",
        action="members.add",
        group_id=GROUP,
        summary="in flight",
        details={"emails": []},
    )
    # Entries older than the cut-off were written by a process that has since died.
    monkeypatch.setattr("groups_app.services.reconcile.abandoned_before", lambda: cutoff)

    run = reconcile_changes()

    change.refresh_from_db()
    local.refresh_from_db()
    fresh.refresh_from_db()
    assert run.abandoned == 2
    assert change.status == "unknown" and change.resolution == "not_applied"
    assert "stopped before recording its outcome" in change.error
    assert local.status == "failed"
    assert fresh.status == "pending"  # a change still running is left alone


def test_an_unreadable_group_stays_unknown_and_the_command_says_so(group, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", "503")
    with deadline(0.5), pytest.raises(ChangeOutcomeUnknown):
        group_members_add(actor=help_desk(username="hana"), group_id=GROUP, emails=["z@example.com"])
    inject_fault("list_users_from_user_group", "503")

    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("reconcile_changes", stdout=out)

    assert "Still unknown (Segment could not be read): 1." in out.getvalue()
    assert AuditEntry.objects.get().is_unresolved
    assert not Invite.objects.exists()
