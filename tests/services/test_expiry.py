"""Time-bound access: end dates on direct additions, notices before the end, renewals, letting go,
a member asking for a renewal, and the expiry removing nobody early."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from groups_app.models import AccessRequest, AuditEntry, GroupOwner, MirrorMember
from groups_app.services.approvals.access_requests import access_request_approve, access_requests_expire
from groups_app.services.approvals.changes import members_add_or_file
from groups_app.services.approvals.expiry import (
    access_let_expire,
    access_renew,
    access_renewal_ask,
    expiring_access,
    expiry_notices_send,
)
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.mirror.sync import sync_workspace
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"
OTHERS = "groupOthers00000000000000001"


@pytest.fixture
def workspace(db):
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    UserGroup.objects.create(id=OTHERS, name="Others")
    alice = WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    WorkspaceUser.objects.create(name="Bob", email="bob@example.com")
    Membership.objects.create(group=readers, user=alice)
    return readers


@pytest.fixture
def hana(db):
    return help_desk(username="hana", email="hana@example.com")


@pytest.fixture
def olga(db):
    user = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=user, email=user.email, identity=user.email
    )
    return user


def today():
    return timezone.localdate()


def emails_of(group_id):
    users = set(Membership.objects.filter(group_id=group_id).values_list("user__email", flat=True))
    return users | set(Invite.objects.filter(group_id=group_id).values_list("email", flat=True))


def add_until(actor, days, emails=("bob@example.com",)):
    members_add_or_file(
        actor=actor, group_id=READERS, emails=list(emails), ends_on=today() + timedelta(days=days)
    )
    return AccessRequest.objects.filter(group_id=READERS, is_direct=True).order_by("id")


def test_a_direct_addition_with_an_end_date_records_it_for_the_new_members_only(workspace, hana):
    recorded = add_until(hana, 3, emails=("alice@example.com", "bob@example.com"))

    assert [(r.email, r.status, r.needed_until) for r in recorded] == [
        ("bob@example.com", AccessRequest.Status.PROVISIONED, today() + timedelta(days=3))
    ]
    assert recorded[0].provisioning_entry.action == AuditEntry.Action.MEMBERS_ADD
    assert AuditEntry.objects.filter(
        action=AuditEntry.Action.ACCESS_END_SET, access_request=recorded[0]
    ).exists()


def test_an_end_date_in_the_past_is_refused_and_nothing_is_added(workspace, hana):
    with pytest.raises(InvalidInput) as refused:
        members_add_or_file(actor=hana, group_id=READERS, emails=["bob@example.com"], ends_on=today())

    assert "ends_on" in refused.value.field_errors
    assert emails_of(READERS) == {"alice@example.com"}


def test_an_addition_ending_in_three_days_mails_the_member_and_the_owners_once(workspace, hana, olga):
    add_until(hana, 3)
    mail.outbox.clear()

    call_command("notify_expiring", stdout=None)
    expiry_notices_send()  # again: nothing new

    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["bob@example.com", "olga@example.com"]
    assert mail.outbox[0].subject == "Access ending in 3 days: Readers"


def test_the_last_notice_comes_the_day_before(workspace, hana):
    add_until(hana, 3)
    expiry_notices_send()
    mail.outbox.clear()

    expiry_notices_send(today=today() + timedelta(days=1))
    assert mail.outbox == []
    expiry_notices_send(today=today() + timedelta(days=2))
    assert len(mail.outbox) == 1 and "tomorrow" in mail.outbox[0].subject


def test_renewing_moves_the_date_and_stops_the_notices_audited(workspace, hana, olga):
    [access] = add_until(hana, 3)
    new_end = today() + timedelta(days=60)

    result = access_renew(
        actor=olga, access_request_ids=[access.pk], ends_on=new_end, reason="Project extended"
    )
    mail.outbox.clear()
    expiry_notices_send()

    access.refresh_from_db()
    assert result.done == (access,) and access.needed_until == new_end
    assert mail.outbox == []
    renewal = AuditEntry.objects.get(action=AuditEntry.Action.ACCESS_RENEW)
    assert renewal.actor_username == "olga" and renewal.details["reason"] == "Project extended"
    assert renewal.details["needed_until_before"] == f"{today() + timedelta(days=3):%Y-%m-%d}"
    assert access not in expiring_access(viewer=olga)


def test_a_renewal_needs_a_future_date_and_a_reason(workspace, hana):
    [access] = add_until(hana, 3)

    with pytest.raises(InvalidInput) as refused:
        access_renew(actor=hana, access_request_ids=[access.pk], ends_on=today(), reason=" ")

    assert set(refused.value.field_errors) == {"ends_on", "reason"}


def test_someone_who_neither_handles_requests_nor_owns_the_group_cannot_renew(workspace, hana):
    [access] = add_until(hana, 3)
    bystander = viewer(username="vera", email="vera@example.com")

    result = access_renew(
        actor=bystander, access_request_ids=[access.pk], ends_on=today() + timedelta(days=30), reason="x"
    )

    assert result.done == () and len(result.refused) == 1
    access.refresh_from_db()
    assert access.needed_until == today() + timedelta(days=3)
    assert AuditEntry.objects.get(action=AuditEntry.Action.ACCESS_RENEW).status == AuditEntry.Status.REFUSED


def test_let_it_expire_stops_the_notices_and_the_expiry_removes_on_the_day(workspace, hana):
    [access] = add_until(hana, 3)
    access_let_expire(actor=hana, access_request_ids=[access.pk])

    expiry_notices_send()
    assert mail.outbox == []
    access_requests_expire(today=today() + timedelta(days=3))
    assert "bob@example.com" in emails_of(READERS)  # not before its last day is over

    access_requests_expire(today=today() + timedelta(days=4))
    assert "bob@example.com" not in emails_of(READERS)
    access.refresh_from_db()
    assert access.status == AccessRequest.Status.EXPIRED


def test_the_owner_sees_only_their_groups_on_the_expiring_list(workspace, hana, olga):
    [access] = add_until(hana, 3)
    members_add_or_file(
        actor=hana, group_id=OTHERS, emails=["bob@example.com"], ends_on=today() + timedelta(days=3)
    )

    assert list(expiring_access(viewer=olga)) == [access]
    assert len(expiring_access(viewer=hana)) == 2


def test_a_member_asks_for_a_renewal_and_the_expiry_then_removes_nobody_early(workspace, hana, olga):
    [access] = add_until(hana, 3)
    bob = viewer(username="bob", email="Bob@Example.com")

    filed = access_renewal_ask(
        actor=bob,
        access_request_id=access.pk,
        ends_on=today() + timedelta(days=40),
        justification="Still on it",
    ).filed
    access_request_approve(actor=olga, access_request_id=filed[0].pk)
    access_requests_expire(today=today() + timedelta(days=5))

    access.refresh_from_db()
    assert access.status == AccessRequest.Status.EXPIRED
    assert "bob@example.com" in emails_of(READERS)


def test_only_the_member_asks_to_renew_their_own_access(workspace, hana):
    [access] = add_until(hana, 3)

    with pytest.raises(NotAllowed):
        access_renewal_ask(
            actor=viewer(username="vera", email="vera@example.com"),
            access_request_id=access.pk,
            ends_on=today() + timedelta(days=40),
            justification="x",
        )


def test_a_privileged_additions_end_date_goes_with_the_filed_requests(db, settings):
    role = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    group = UserGroup.objects.create(id=READERS, name="Readers")
    GroupPermission.objects.create(group=group, role=role, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    WorkspaceUser.objects.create(name="Bob", email="bob@example.com")
    ada = administrator(username="ada", email="ada@example.com")
    end = today() + timedelta(days=10)

    members_add_or_file(actor=ada, group_id=READERS, emails=["bob@example.com"], ends_on=end)

    filed = AccessRequest.objects.get(email="bob@example.com")
    assert filed.status == AccessRequest.Status.PENDING and filed.needed_until == end


def test_an_owner_cannot_renew_access_to_a_privileged_group(db):
    role = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    group = UserGroup.objects.create(id=READERS, name="Readers")
    GroupPermission.objects.create(group=group, role=role, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    sync_workspace(trigger="test")
    olga = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=olga, email=olga.email, identity=olga.email
    )
    access = AccessRequest.objects.create(
        group_id=READERS, group_name="Readers", email="bob@example.com", requester_username="x",
        justification="x", status=AccessRequest.Status.PROVISIONED, needed_until=today() + timedelta(days=3),
    )  # fmt: skip

    result = access_renew(
        actor=olga, access_request_ids=[access.pk], ends_on=today() + timedelta(days=30), reason="x"
    )

    assert result.done == () and "privileged group" in result.refused[0][1]


def test_someone_removed_elsewhere_and_added_again_for_good_is_not_removed_on_the_old_date(workspace, hana):
    [earlier] = add_until(hana, 3)
    Membership.objects.filter(group_id=READERS, user__email="bob@example.com").delete()  # in Segment's app

    members_add_or_file(actor=hana, group_id=READERS, emails=["bob@example.com"])  # no end date now
    access_requests_expire(today=today() + timedelta(days=4))

    assert "bob@example.com" in emails_of(READERS)
    earlier.refresh_from_db()
    assert earlier.status == AccessRequest.Status.EXPIRED
    ended = AuditEntry.objects.get(action=AuditEntry.Action.REQUEST_EXPIRE, access_request=earlier)
    addition = AuditEntry.objects.filter(action=AuditEntry.Action.MEMBERS_ADD).latest("id")
    assert ended.actor_username == "hana" and ended.details["superseded_by"] == addition.pk
    assert "the earlier end date" in ended.summary and not expiring_access(viewer=hana).exists()


def test_adding_again_with_a_new_end_date_replaces_the_old_one(workspace, hana):
    [earlier] = add_until(hana, 3)
    Membership.objects.filter(group_id=READERS, user__email="bob@example.com").delete()

    add_until(hana, 20)
    access_requests_expire(today=today() + timedelta(days=4))

    assert "bob@example.com" in emails_of(READERS)
    assert [r.needed_until for r in expiring_access(viewer=hana)] == [today() + timedelta(days=20)]
    earlier.refresh_from_db()
    assert earlier.status == AccessRequest.Status.EXPIRED


def test_a_member_added_again_keeps_their_end_date(workspace, hana):
    [access] = add_until(hana, 3)

    members_add_or_file(actor=hana, group_id=READERS, emails=["bob@example.com"])  # already a member

    access.refresh_from_db()
    assert access.status == AccessRequest.Status.PROVISIONED


def test_a_mirror_that_missed_a_member_never_ends_their_end_date(workspace, hana):
    [access] = add_until(hana, 3)
    sync_workspace(trigger="test")
    MirrorMember.objects.filter(group_id=READERS, email="bob@example.com").delete()  # a copy that missed him

    members_add_or_file(actor=hana, group_id=READERS, emails=["bob@example.com"])

    access.refresh_from_db()
    assert access.status == AccessRequest.Status.PROVISIONED


def test_a_removal_observed_by_a_sync_lets_the_next_addition_end_the_old_date(workspace, hana):
    [access] = add_until(hana, 3)
    sync_workspace(trigger="test")
    Membership.objects.filter(group_id=READERS, user__email="bob@example.com").delete()  # in Segment's app
    sync_workspace(trigger="test")  # observed, and the mirror no longer lists him

    members_add_or_file(actor=hana, group_id=READERS, emails=["bob@example.com"])

    access.refresh_from_db()
    assert access.status == AccessRequest.Status.EXPIRED
    assert AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED, group_id=READERS).exists()
