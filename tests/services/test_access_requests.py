"""Access requests: filing rules, decisions, provisioning failure and retry, expiry, notifications."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from groups_app import tasks
from groups_app.models import AccessRequest, AuditEntry
from groups_app.segment import deadline
from groups_app.services.approvals.access_requests import (
    access_request_approve,
    access_request_cancel,
    access_request_close,
    access_request_deny,
    access_request_file,
    access_request_queue,
    access_request_reconcile,
    access_request_retry,
    access_requests_expire,
)
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.reconcile import reconcile_changes
from sandbox.faults import inject_fault
from sandbox.models import Invite, Membership, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

GROUP = "groupData000000000000000000001"


@pytest.fixture
def group(db):
    group = UserGroup.objects.create(id=GROUP, name="Data Engineering")
    member = WorkspaceUser.objects.create(name="Member", email="member@example.com")
    WorkspaceUser.objects.create(name="Vera", email="vera@example.com")
    Membership.objects.create(group=group, user=member)
    return group


@pytest.fixture
def vera(db):
    return viewer(username="vera", email="vera@example.com")


@pytest.fixture
def hana(db):
    return help_desk(username="hana", email="hana@example.com")


@pytest.fixture
def ada(db):
    return help_desk(username="ada2", email="ada@example.com")


def file_for_vera(vera, **kwargs):
    return access_request_file(actor=vera, group_id=GROUP, justification="Need dashboards", **kwargs).filed[0]


def in_group(email):
    return (
        Membership.objects.filter(group_id=GROUP, user__email=email).exists()
        or Invite.objects.filter(group_id=GROUP, email=email).exists()
    )


def test_anyone_files_for_themselves_and_approvers_are_told(group, vera, hana):
    request = file_for_vera(vera, needed_until=timezone.localdate() + timedelta(days=30))

    assert (request.email, request.status, request.requester_username) == (
        "vera@example.com",
        "pending",
        "vera",
    )
    entry = AuditEntry.objects.get(action="request.file")
    assert entry.access_request == request and entry.status == "succeeded"
    (message,) = mail.outbox
    assert message.subject == "Access request: “Data Engineering”"
    assert "hana@example.com" in message.to and "vera@example.com" not in message.to
    assert f"/requests/{request.pk}/" in message.body


def test_viewer_may_not_file_for_someone_else(group, vera):
    with pytest.raises(NotAllowed):
        access_request_file(actor=vera, group_id=GROUP, justification="x", emails=["other@example.com"])


def test_help_desk_files_for_several_people_one_request_each(group, hana):
    result = access_request_file(
        actor=hana, group_id=GROUP, justification="Onboarding", emails=["a@example.com", "B@example.com"]
    )

    assert [r.email for r in result.filed] == ["a@example.com", "b@example.com"]
    assert AuditEntry.objects.filter(action="request.file").count() == 2


def test_duplicate_pending_request_is_refused_with_the_existing_one(group, vera):
    first = file_for_vera(vera)

    result = access_request_file(actor=vera, group_id=GROUP, justification="again")

    assert result.filed == () and result.duplicates == (first,)
    assert AccessRequest.objects.count() == 1


def test_request_for_a_member_is_not_filed(group, hana):
    result = access_request_file(
        actor=hana, group_id=GROUP, justification="x", emails=["member@example.com", "new@example.com"]
    )

    assert result.already_members == ("member@example.com",)
    assert [r.email for r in result.filed] == ["new@example.com"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"justification": "  "}, "justification"), ({"needed_until": "past"}, "needed_until")],
)
def test_justification_is_required_and_the_end_date_in_the_future(group, vera, kwargs, field):
    if kwargs.get("needed_until") == "past":
        kwargs = {"justification": "x", "needed_until": timezone.localdate()}

    with pytest.raises(InvalidInput) as caught:
        access_request_file(actor=vera, group_id=GROUP, **kwargs)

    assert field in caught.value.field_errors
    assert not AccessRequest.objects.exists()


def test_account_without_email_cannot_request_for_itself(group):
    with pytest.raises(InvalidInput, match="no usable email address"):
        access_request_file(actor=viewer(email=""), group_id=GROUP, justification="x")


def test_approval_adds_the_member_links_the_audit_entry_and_tells_the_requester(group, vera, hana):
    request = file_for_vera(vera)
    mail.outbox.clear()

    approved = access_request_approve(actor=hana, access_request_id=request.pk)

    assert approved.status == "provisioned" and approved.decided_by_username == "hana"
    assert in_group("vera@example.com")
    assert approved.provisioning_entry.action == "members.add"
    assert approved.provisioning_entry.status == "succeeded"
    assert AuditEntry.objects.get(action="request.approve").access_request == approved
    assert "approved" in mail.outbox[0].subject.lower() and "vera@example.com" in mail.outbox[0].to


@pytest.mark.parametrize("whose", ["filed_by_approver", "for_approver_email"])
def test_nobody_approves_their_own_request_and_the_attempt_is_audited(group, hana, whose):
    if whose == "filed_by_approver":
        request = access_request_file(
            actor=hana, group_id=GROUP, justification="x", emails=["friend@example.com"]
        ).filed[0]
    else:
        other = help_desk(username="other", email="other@example.com")
        request = access_request_file(
            actor=other, group_id=GROUP, justification="x", emails=["hana@example.com"]
        ).filed[0]

    with pytest.raises(NotAllowed, match="cannot approve a change you asked for"):
        access_request_approve(actor=hana, access_request_id=request.pk)

    request.refresh_from_db()
    assert request.status == "pending"
    entry = AuditEntry.objects.get(action="request.approve")
    assert entry.status == "refused" and "NotAllowed" in entry.error
    assert "was refused approving access" in entry.summary


def test_provisioning_failure_then_retry(group, vera, hana, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    request = file_for_vera(vera)
    inject_fault("add_users_to_user_group", "429")

    failed = access_request_approve(actor=hana, access_request_id=request.pk)

    assert failed.status == "provisioning_failed"
    assert failed.get_status_display() == "Approved — provisioning failed"
    assert "rate-limiting changes" in failed.provisioning_error
    assert failed.provisioning_entry.status == "failed"
    assert not in_group("vera@example.com")

    retried = access_request_retry(actor=hana, access_request_id=request.pk)

    assert retried.status == "provisioned" and retried.provisioning_error == ""
    assert in_group("vera@example.com")
    assert retried.provisioning_entry.status == "succeeded"


def test_provisioning_whose_reply_was_lost_is_read_back_as_provisioned(group, vera, hana, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    request = file_for_vera(vera)
    inject_fault("add_users_to_user_group", "applied-500")

    approved = access_request_approve(actor=hana, access_request_id=request.pk)

    assert approved.status == "provisioned" and in_group("vera@example.com")
    entry = approved.provisioning_entry
    assert entry.status == "unknown" and entry.resolution == "applied"
    assert entry.access_request == approved


def test_provisioning_with_an_unreadable_outcome_waits_then_is_reconciled(group, vera, hana, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    request = file_for_vera(vera)
    inject_fault("add_users_to_user_group", "503")

    with deadline(0.5):  # too little time left to read back at once
        unknown = access_request_approve(actor=hana, access_request_id=request.pk)

    assert unknown.status == "outcome_unknown"
    assert unknown.get_status_display() == "Approved — outcome unknown"
    with pytest.raises(InvalidInput, match="outcome unknown"):
        access_request_retry(actor=hana, access_request_id=request.pk)  # never resent while unknown

    reconciled = access_request_reconcile(actor=hana, access_request_id=request.pk)

    assert reconciled.status == "provisioning_failed"  # the injected 503 did not apply it
    assert "not applied" in reconciled.provisioning_error
    assert access_request_retry(actor=hana, access_request_id=request.pk).status == "provisioned"


def test_a_crash_while_provisioning_never_leaves_the_request_stuck(group, vera, hana, monkeypatch):
    request = file_for_vera(vera)

    def crash(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr("groups_app.services.approvals.access_requests.group_members_add", crash)

    approved = access_request_approve(actor=hana, access_request_id=request.pk)

    assert approved.status == "provisioning_failed"
    assert "internal error" in approved.provisioning_error
    monkeypatch.undo()
    assert access_request_retry(actor=hana, access_request_id=request.pk).status == "provisioned"


def test_a_request_left_in_flight_by_a_dead_process_is_recovered(group, vera, hana):
    request = file_for_vera(vera)
    long_ago = timezone.now() - timedelta(hours=1)
    AccessRequest.objects.filter(pk=request.pk).update(
        status="provisioning", decided_at=long_ago, provisioning_started_at=long_ago
    )

    assert access_request_queue(status="open").filter(pk=request.pk).exists()  # it needs a person
    run = reconcile_changes()

    request.refresh_from_db()
    assert run.requests_recovered == 1
    assert (
        request.status == "provisioning_failed" and "before anything was sent" in request.provisioning_error
    )


def test_filing_for_your_own_email_outside_the_allowed_domains_is_refused(group, vera, settings):
    settings.ALLOWED_EMAIL_DOMAINS = ["acme.example"]

    with pytest.raises(InvalidInput, match="outside the allowed domains"):
        file_for_vera(vera)

    assert not AccessRequest.objects.exists()


def test_a_request_that_cannot_be_provisioned_is_closed_with_a_reason(group, vera, hana, settings):
    request = file_for_vera(vera)
    settings.ALLOWED_EMAIL_DOMAINS = ["acme.example"]  # the policy changed after filing
    failed = access_request_approve(actor=hana, access_request_id=request.pk)
    assert (
        failed.status == "provisioning_failed" and "outside the allowed domains" in failed.provisioning_error
    )
    mail.outbox.clear()

    with pytest.raises(InvalidInput, match="Say why"):
        access_request_close(actor=hana, access_request_id=request.pk, reason=" ")
    closed = access_request_close(
        actor=hana, access_request_id=request.pk, reason="Contractors use the partner workspace"
    )

    assert closed.status == "closed" and closed.decision_reason.startswith("Contractors")
    assert "Contractors use the partner workspace" in mail.outbox[0].body
    assert AuditEntry.objects.filter(action="request.close", status="succeeded").count() == 1


def test_denial_needs_a_reason_and_tells_the_requester(group, vera, hana):
    request = file_for_vera(vera)
    with pytest.raises(InvalidInput):
        access_request_deny(actor=hana, access_request_id=request.pk, reason="  ")
    mail.outbox.clear()

    denied = access_request_deny(actor=hana, access_request_id=request.pk, reason="Use the Analysts group")

    assert denied.status == "denied" and denied.decision_reason == "Use the Analysts group"
    assert not in_group("vera@example.com")
    assert "Use the Analysts group" in mail.outbox[0].body
    assert AuditEntry.objects.get(action="request.deny", status="succeeded").details["reason"] == (
        "Use the Analysts group"
    )
    assert AuditEntry.objects.get(action="request.deny", status="refused").error.endswith(
        "reason for the denial."
    )


def test_only_the_requester_cancels_and_only_while_pending(group, vera, hana):
    request = file_for_vera(vera)
    with pytest.raises(NotAllowed):
        access_request_cancel(actor=hana, access_request_id=request.pk)

    access_request_cancel(actor=vera, access_request_id=request.pk)

    with pytest.raises(InvalidInput, match="cancelled"):
        access_request_approve(actor=hana, access_request_id=request.pk)
    assert AuditEntry.objects.filter(action="request.cancel", status="succeeded").count() == 1


def test_a_failing_mail_server_never_blocks_a_decision(group, vera, hana, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr("groups_app.services.notifications.send_mail", broken)
    request = file_for_vera(vera)

    approved = access_request_approve(actor=hana, access_request_id=request.pk)

    assert approved.status == "provisioned"


def test_expiry_removes_exactly_the_expired_memberships_and_is_idempotent(group, hana):
    today = timezone.localdate()
    result = access_request_file(
        actor=hana,
        group_id=GROUP,
        justification="temp",
        emails=["temp1@example.com", "temp2@example.com"],
        needed_until=today + timedelta(days=1),
    )
    lasting = access_request_file(
        actor=hana,
        group_id=GROUP,
        justification="long",
        emails=["keeper@example.com"],
        needed_until=today + timedelta(days=10),
    ).filed[0]
    forever = access_request_file(
        actor=hana, group_id=GROUP, justification="perm", emails=["perm@example.com"]
    ).filed[0]
    approver = help_desk(username="approver", email="approver@example.com")
    for request in [*result.filed, lasting, forever]:
        access_request_approve(actor=approver, access_request_id=request.pk)

    first = access_requests_expire(today=today + timedelta(days=2))
    second = access_requests_expire(today=today + timedelta(days=2))

    assert sorted(r.email for r in first.expired) == ["temp1@example.com", "temp2@example.com"]
    assert second.expired == () and second.failed == ()
    assert not in_group("temp1@example.com") and not in_group("temp2@example.com")
    assert in_group("keeper@example.com") and in_group("perm@example.com") and in_group("member@example.com")
    entries = AuditEntry.objects.filter(action="request.expire")
    assert entries.count() == 2 and set(entries.values_list("actor_username", flat=True)) == {"system"}
    removal = AuditEntry.objects.get(action="members.remove")
    assert removal.actor_username == "system" and removal.actor_user_id is None
    assert set(AccessRequest.objects.filter(status="expired").values_list("email", flat=True)) == {
        "temp1@example.com",
        "temp2@example.com",
    }


def test_expiry_failure_is_left_for_the_next_run(group, hana, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    today = timezone.localdate()
    request = access_request_file(
        actor=hana,
        group_id=GROUP,
        justification="t",
        emails=["t@example.com"],
        needed_until=today + timedelta(days=1),
    ).filed[0]
    access_request_approve(
        actor=help_desk(username="approver", email="ap@example.com"), access_request_id=request.pk
    )
    inject_fault("remove_users_from_user_group", "503")

    failed = access_requests_expire(today=today + timedelta(days=2))
    retried = access_requests_expire(today=today + timedelta(days=2))

    assert [r.email for r, _ in failed.failed] == ["t@example.com"]
    assert [r.email for r in retried.expired] == ["t@example.com"]
    assert not in_group("t@example.com")


def test_queue_is_oldest_first_and_filters(group, hana):
    access_request_file(
        actor=hana, group_id=GROUP, justification="x", emails=["one@example.com", "two@example.com"]
    )

    assert [r.email for r in access_request_queue()] == ["one@example.com", "two@example.com"]
    assert list(access_request_queue(requester="nobody")) == []
    assert list(access_request_queue(group="data eng").values_list("email", flat=True)) == [
        "one@example.com",
        "two@example.com",
    ]
    assert list(access_request_queue(older_than_days=1)) == []


def test_expire_access_command(group, hana):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("expire_access", stdout=out)

    assert "0 expired, 0 failed." in out.getvalue()


def test_unknown_user_group_gives_not_found(db, vera):
    from groups_app.segment import NotFound

    with pytest.raises(NotFound):
        access_request_file(actor=vera, group_id="groupMissing", justification="x")


def test_only_one_of_two_simultaneous_decisions_wins(group, vera, hana, monkeypatch):
    stale = file_for_vera(vera)  # what the second approver's page was built from
    access_request_deny(
        actor=help_desk(username="quick", email="quick@example.com"), access_request_id=stale.pk, reason="No"
    )
    monkeypatch.setattr(
        "groups_app.services.approvals.access_requests._open_request",
        lambda request_id, *statuses, **kw: stale,
    )

    with pytest.raises(InvalidInput, match="changed a moment ago by someone else; it is now denied"):
        access_request_approve(actor=hana, access_request_id=stale.pk)

    assert not in_group("vera@example.com")
    assert AccessRequest.objects.get(pk=stale.pk).status == "denied"


def test_requests_for_a_group_deleted_outside_are_closed_after_the_next_sync(db, enqueued):
    group = UserGroup.objects.create(id="groupGone0000000000000000001", name="Doomed")
    sync_workspace(trigger="test")
    vera = viewer(username="vera", email="vera@example.com")
    first = access_request_file(actor=vera, group_id=group.id, justification="j").filed[0]
    second = access_request_file(
        actor=help_desk(username="hana", email="hana@example.com"),
        group_id=group.id,
        emails=["eve@example.com"],
        justification="j",
    ).filed[0]
    group.delete()  # in Segment's own app

    with pytest.raises(InvalidInput, match=r"no longer exists in Segment .*\. The request was closed\."):
        access_request_approve(
            actor=administrator(username="ada", email="ada@example.com"), access_request_id=first.pk
        )
    summary = tasks.sync_workspace.call(trigger="test")

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == AccessRequest.Status.CLOSED
    assert "no longer exists in Segment" in second.decision_reason
    assert summary["requests_closed"] == 1
    closes = AuditEntry.objects.filter(action="request.close")
    assert {entry.actor_username for entry in closes} == {"ada", "system"}
