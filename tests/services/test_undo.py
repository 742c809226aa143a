"""Undo a change observed outside Group Admin: each reverse step through the pipeline and the rule
book, privileged additions and grants filed for a second Administrator, linked to the entry undone."""

import pytest

from groups_app.models import AccessRequest, AuditEntry, ChangeProposal
from groups_app.segment import Label, Permission, Resource
from groups_app.services.approvals.access_requests import access_request_approve
from groups_app.services.approvals.undo import undo_apply, undo_plan
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.segment_client import get_client
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"
OWNERS = "groupOwners00000000000000001"
PROD = [{"key": "environment", "value": "prod"}]


@pytest.fixture
def workspace(db):
    owner_role = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    reader_role = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    owners = UserGroup.objects.create(id=OWNERS, name="Owners")
    GroupPermission.objects.create(
        group=readers, role=reader_role, resources=[{"id": "ws1", "type": "WORKSPACE", "labels": PROD}]
    )
    GroupPermission.objects.create(
        group=owners, role=owner_role, resources=[{"id": "ws1", "type": "WORKSPACE"}]
    )
    alice = WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    WorkspaceUser.objects.create(name="Bob", email="bob@example.com")
    Membership.objects.create(group=readers, user=alice)
    Invite.objects.create(group=readers, email="ivan@example.com")
    Membership.objects.create(group=owners, user=alice)
    sync_workspace(trigger="baseline")
    return {"readers": readers, "owners": owners}


@pytest.fixture
def ada(db):
    return administrator(username="ada", email="ada@example.com")


@pytest.fixture
def bert(db):
    return administrator(username="bert", email="bert@example.com")


def observed(group_id):
    sync_workspace(trigger="test")
    return AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED, group_id=group_id).latest("id")


def emails_of(group_id):
    users = set(Membership.objects.filter(group_id=group_id).values_list("user__email", flat=True))
    return users | set(Invite.objects.filter(group_id=group_id).values_list("email", flat=True))


def test_a_member_and_an_invite_removed_in_segments_app_are_re_added_by_undo(workspace, ada):
    get_client().remove_users_from_user_group(READERS, ["alice@example.com", "ivan@example.com"])
    entry = observed(READERS)

    plan = undo_plan(entry_id=entry.pk)
    assert plan.readd == ("alice@example.com", "ivan@example.com")
    result = undo_apply(actor=ada, entry_id=entry.pk)

    assert result.is_complete
    assert emails_of(READERS) == {"alice@example.com", "ivan@example.com"}
    undo = result.entry
    assert undo.action == AuditEntry.Action.UNDO and undo.details["undoes"] == entry.pk
    readd = AuditEntry.objects.get(pk=undo.details["steps"][0]["entry"])
    assert readd.action == AuditEntry.Action.MEMBERS_ADD and readd.actor_username == "ada"
    assert undo_plan(entry_id=entry.pk).undone_by == undo


def test_undoing_twice_is_refused(workspace, ada):
    get_client().remove_users_from_user_group(READERS, ["alice@example.com"])
    entry = observed(READERS)
    undo_apply(actor=ada, entry_id=entry.pk)

    with pytest.raises(InvalidInput, match="undone already"):
        undo_apply(actor=ada, entry_id=entry.pk)


def test_a_member_removed_from_a_privileged_group_is_filed_for_a_second_administrator(workspace, ada, bert):
    get_client().remove_users_from_user_group(OWNERS, ["alice@example.com"])
    entry = observed(OWNERS)

    result = undo_apply(actor=ada, entry_id=entry.pk)

    assert [step.outcome for step in result.steps] == ["filed"]
    assert "alice@example.com" not in emails_of(OWNERS)
    request = AccessRequest.objects.get(group_id=OWNERS, email="alice@example.com")
    with pytest.raises(NotAllowed):
        access_request_approve(actor=ada, access_request_id=request.pk)
    access_request_approve(actor=bert, access_request_id=request.pk)
    assert "alice@example.com" in emails_of(OWNERS)


def test_someone_added_outside_is_removed_by_undo(workspace, ada):
    get_client().add_users_to_user_group(READERS, ["bob@example.com"])
    entry = observed(READERS)

    undo_apply(actor=ada, entry_id=entry.pk)

    assert emails_of(READERS) == {"alice@example.com", "ivan@example.com"}


def test_permissions_changed_outside_are_restored_exactly_with_their_labels(workspace, ada):
    broader = Permission("roleReader0000000000000000002", "", (Resource("ws1", "WORKSPACE"),))
    get_client().replace_permissions_for_user_group(READERS, [broader])
    entry = observed(READERS)

    result = undo_apply(actor=ada, entry_id=entry.pk)

    assert result.is_complete
    restored = get_client().get_user_group(READERS).permissions
    assert [(p.role_id, [(r.id, r.labels) for r in p.resources]) for p in restored] == [
        ("roleReader0000000000000000002", [("ws1", (Label("environment", "prod"),))])
    ]


def test_a_privileged_grant_removed_outside_is_proposed_for_a_second_administrator(workspace, ada):
    get_client().replace_permissions_for_user_group(OWNERS, [])
    entry = observed(OWNERS)

    result = undo_apply(actor=ada, entry_id=entry.pk)

    assert [step.outcome for step in result.steps] == ["filed"]
    assert ChangeProposal.objects.filter(group_id=OWNERS, status=ChangeProposal.Status.PENDING).exists()
    assert get_client().get_user_group(OWNERS).permissions == ()


def test_permissions_changed_again_since_the_observation_are_not_overwritten(workspace, ada):
    broader = Permission("roleReader0000000000000000002", "", (Resource("ws1", "WORKSPACE"),))
    get_client().replace_permissions_for_user_group(READERS, [broader])
    entry = observed(READERS)
    other = Permission("roleReader0000000000000000002", "", (Resource("ws2", "WORKSPACE"),))
    get_client().replace_permissions_for_user_group(READERS, [other])

    result = undo_apply(actor=ada, entry_id=entry.pk)

    assert [step.outcome for step in result.steps] == ["refused"]
    assert not result.entry.details["complete"]
    assert [r.id for p in get_client().get_user_group(READERS).permissions for r in p.resources] == ["ws2"]


def test_a_rename_outside_is_renamed_back(workspace, ada):
    get_client().update_user_group(READERS, "Readers (old)")
    entry = observed(READERS)

    undo_apply(actor=ada, entry_id=entry.pk)

    assert get_client().get_user_group(READERS).name == "Readers"


def test_a_group_deleted_outside_is_re_created_with_its_members_and_permissions(workspace, ada):
    get_client().delete_user_group(READERS)
    entry = observed(READERS)
    assert entry.details["removed"] == ["alice@example.com", "ivan@example.com"]

    result = undo_apply(actor=ada, entry_id=entry.pk)

    assert result.is_complete, result.steps
    assert result.group_id != READERS
    group = get_client().get_user_group(result.group_id)
    assert group.name == "Readers"
    assert [r.labels for p in group.permissions for r in p.resources] == [(Label("environment", "prod"),)]
    assert emails_of(result.group_id) == {"alice@example.com", "ivan@example.com"}


def test_only_administrators_undo_and_the_refusal_is_audited(workspace):
    get_client().remove_users_from_user_group(READERS, ["alice@example.com"])
    entry = observed(READERS)

    with pytest.raises(NotAllowed):
        undo_apply(actor=help_desk(username="hana", email="hana@example.com"), entry_id=entry.pk)

    assert "alice@example.com" not in emails_of(READERS)
    refused = AuditEntry.objects.get(action=AuditEntry.Action.UNDO)
    assert refused.status == AuditEntry.Status.REFUSED and refused.details["undoes"] == entry.pk


def test_only_observed_entries_can_be_undone(workspace, ada):
    other = AuditEntry.objects.create(actor_username="x", action=AuditEntry.Action.MEMBERS_ADD, summary="x")

    with pytest.raises(InvalidInput):
        undo_plan(entry_id=other.pk)
