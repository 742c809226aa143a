"""The rule book through the change pipeline and the approvals layer: privileged groups, nobody
adds themselves, the two-person rule, proposals."""

import pytest

from groups_app.models import AccessRequest, AuditEntry
from groups_app.segment import Permission, Resource
from groups_app.services.approvals.access_requests import access_request_approve
from groups_app.services.approvals.changes import (
    members_add_or_file,
    permissions_add_or_propose,
    permissions_replace_or_propose,
)
from groups_app.services.approvals.proposals import proposal_approve, proposal_reject
from groups_app.services.changes import RuleRefused, SecondPersonNeeded
from groups_app.services.errors import AwaitingApproval, InvalidInput, NotAllowed, StaleChange
from groups_app.services.groups import group_list
from groups_app.services.membership import (
    group_members_add,
    group_members_remove,
    group_members_replace,
    group_members_replace_preview,
)
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.permissions import group_permissions_add
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_sources")]

OWNERS = "groupOwners00000000000000001"
READERS = "groupReaders0000000000000001"


@pytest.fixture
def workspace(db):
    owner = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    reader = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    owners = UserGroup.objects.create(id=OWNERS, name="Owners")
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    GroupPermission.objects.create(group=owners, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    GroupPermission.objects.create(group=readers, role=reader, resources=[{"id": "src1", "type": "SOURCE"}])
    alice = WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    Membership.objects.create(group=owners, user=alice)
    return {"owners": owners, "readers": readers}


def emails_of(group_id):
    users = set(Membership.objects.filter(group_id=group_id).values_list("user__email", flat=True))
    return users | set(Invite.objects.filter(group_id=group_id).values_list("email", flat=True))


def test_groups_granting_a_privileged_role_are_marked(workspace, settings):
    sync_workspace(trigger="test")
    rows = {row.group.name: row.is_privileged for row in group_list().rows}

    assert rows == {"Owners": True, "Readers": False}
    settings.PRIVILEGED_ROLES = ["Source Read-only"]
    assert {row.group.name: row.is_privileged for row in group_list().rows} == {
        "Owners": False,
        "Readers": True,
    }


@pytest.mark.parametrize(
    "change",
    [
        lambda actor: group_members_add(actor=actor, group_id=OWNERS, emails=["new@example.com"]),
        lambda actor: group_members_remove(actor=actor, group_id=OWNERS, emails=["alice@example.com"]),
    ],
    ids=["add", "remove"],
)
def test_help_desk_cannot_change_a_privileged_group_and_the_refusal_is_audited(workspace, change):
    with pytest.raises(RuleRefused, match="Owners is a privileged group") as caught:
        change(help_desk(username="hana"))

    assert caught.value.decision.rule == "privileged_group"
    assert emails_of(OWNERS) == {"alice@example.com"}
    entry = AuditEntry.objects.get()
    assert entry.status == AuditEntry.Status.REFUSED and entry.group_name == "Owners"
    assert "only Administrators change its members" in entry.error


def test_help_desk_still_changes_ordinary_groups(workspace):
    group_members_add(actor=help_desk(username="hana"), group_id=READERS, emails=["new@example.com"])

    assert "new@example.com" in emails_of(READERS)


@pytest.mark.parametrize("role", [help_desk, administrator])
def test_nobody_adds_themselves_directly(workspace, role):
    actor = role(username="me", email="Me@Example.com")

    with pytest.raises(RuleRefused, match="request access instead"):
        group_members_add(actor=actor, group_id=READERS, emails=["someone@example.com", "me@example.com"])

    assert emails_of(READERS) == set()
    assert AuditEntry.objects.get().status == AuditEntry.Status.REFUSED


def test_nobody_adds_themselves_by_replacing_the_members(workspace):
    actor = help_desk(username="me", email="me@example.com")
    preview = group_members_replace_preview(group_id=READERS, emails=["me@example.com"])

    with pytest.raises(RuleRefused, match="cannot add yourself"):
        group_members_replace(
            actor=actor, group_id=READERS, emails=["me@example.com"], fingerprint=preview.fingerprint
        )

    assert emails_of(READERS) == set()


def test_an_administrator_adding_to_a_privileged_group_files_requests_for_a_second_one(workspace):
    ada = administrator(username="ada", email="ada@example.com")

    changed = members_add_or_file(actor=ada, group_id=OWNERS, emails=["new@example.com", "alice@example.com"])

    assert changed.result.awaiting_approval == ("new@example.com",)
    assert "a second Administrator must approve" in changed.result.message
    assert emails_of(OWNERS) == {"alice@example.com"}
    request = AccessRequest.objects.get()
    assert request.email == "new@example.com" and request.requester == ada
    filed = AuditEntry.objects.get(action="members.add")
    assert filed == changed.entry
    assert filed.status == AuditEntry.Status.FILED and "second Administrator" in filed.error
    assert AuditEntry.objects.filter(action="request.file", status="succeeded").count() == 1


def test_the_change_service_itself_never_files_anything(workspace):
    with pytest.raises(SecondPersonNeeded) as caught:
        group_members_add(actor=administrator(username="ada"), group_id=OWNERS, emails=["new@example.com"])

    assert caught.value.change.new_members == ("new@example.com",)
    assert not AccessRequest.objects.exists()


def test_the_second_administrator_approves_and_the_member_is_added(workspace):
    ada = administrator(username="ada", email="ada@example.com")
    members_add_or_file(actor=ada, group_id=OWNERS, emails=["new@example.com"])
    request = AccessRequest.objects.get()

    with pytest.raises(NotAllowed, match="cannot approve a change you asked for"):
        access_request_approve(actor=ada, access_request_id=request.pk)
    with pytest.raises(NotAllowed, match="Owners is a privileged group"):
        access_request_approve(actor=help_desk(username="hana"), access_request_id=request.pk)
    approved = access_request_approve(
        actor=administrator(username="bea", email="bea@example.com"), access_request_id=request.pk
    )

    assert approved.status == "provisioned"
    assert "new@example.com" in emails_of(OWNERS)
    assert approved.provisioning_entry.access_request == approved
    assert approved.provisioning_entry.actor_username == "bea"
    refusals = AuditEntry.objects.filter(action="request.approve", status="refused")
    assert {e.actor_username for e in refusals} == {"ada", "hana"}


def test_the_two_person_rule_can_be_turned_off(workspace, settings):
    settings.TWO_PERSON_RULE = False

    members_add_or_file(actor=administrator(username="ada"), group_id=OWNERS, emails=["new@example.com"])

    assert "new@example.com" in emails_of(OWNERS)
    assert not AccessRequest.objects.exists()


def test_replacing_with_additions_on_a_privileged_group_needs_a_second_administrator(workspace):
    preview = group_members_replace_preview(group_id=OWNERS, emails=["alice@example.com", "new@example.com"])

    with pytest.raises(InvalidInput, match="second Administrator"):
        group_members_replace(
            actor=administrator(username="ada"),
            group_id=OWNERS,
            emails=list(preview.emails),
            fingerprint=preview.fingerprint,
        )

    assert emails_of(OWNERS) == {"alice@example.com"}


def test_administrators_change_the_permissions_of_a_privileged_group(workspace):
    grant = Permission("roleReader0000000000000000002", resources=(Resource("src2", "SOURCE"),))

    group_permissions_add(actor=administrator(username="ada"), group_id=OWNERS, permissions=[grant])

    assert GroupPermission.objects.filter(group_id=OWNERS).count() == 2


# -- privileged grants: proposals -------------------------------------------------------------------


OWNER_GRANT = Permission("roleOwner00000000000000000001", resources=(Resource("ws1", "WORKSPACE"),))


def test_granting_a_privileged_role_is_proposed_not_applied(workspace):
    ada = administrator(username="ada")

    with pytest.raises(
        AwaitingApproval, match="Granting Workspace Owner needs a second Administrator"
    ) as caught:
        permissions_add_or_propose(actor=ada, group_id=READERS, permissions=[OWNER_GRANT])

    assert GroupPermission.objects.filter(group_id=READERS).count() == 1
    proposal = caught.value.proposal
    assert proposal.status == "pending" and proposal.proposed_by_username == "ada"
    assert proposal.summary[0]["roleName"] == "Workspace Owner"
    assert AuditEntry.objects.get(action="permissions.add").status == AuditEntry.Status.FILED
    assert AuditEntry.objects.get(action="permissions.propose").status == AuditEntry.Status.SUCCEEDED


def test_a_second_administrator_applies_a_proposal_and_the_proposer_cannot(workspace):
    ada, bea = administrator(username="ada"), administrator(username="bea")
    with pytest.raises(AwaitingApproval) as caught:
        permissions_add_or_propose(actor=ada, group_id=READERS, permissions=[OWNER_GRANT])
    proposal = caught.value.proposal

    with pytest.raises(NotAllowed, match="cannot approve a change you asked for"):
        proposal_approve(actor=ada, proposal_id=proposal.pk)
    with pytest.raises(NotAllowed, match="Only Administrators"):
        proposal_approve(actor=help_desk(username="hana"), proposal_id=proposal.pk)
    approved = proposal_approve(actor=bea, proposal_id=proposal.pk)

    assert approved.status == "approved" and approved.decided_by_username == "bea"
    assert GroupPermission.objects.filter(group_id=READERS, role_id=OWNER_GRANT.role_id).exists()
    assert approved.entry.action == "permissions.add" and approved.entry.actor_username == "bea"
    assert approved.entry.status == AuditEntry.Status.SUCCEEDED
    with pytest.raises(InvalidInput, match="changed a moment ago by someone else"):
        proposal_approve(actor=administrator(username="cy"), proposal_id=proposal.pk)


def test_replacing_permissions_with_a_privileged_grant_is_proposed_and_stays_safe_if_stale(workspace):
    from groups_app.services.permissions import group_permissions_preview

    ada, bea = administrator(username="ada"), administrator(username="bea")
    wanted = [OWNER_GRANT]
    preview = group_permissions_preview(group_id=READERS, permissions=wanted)
    with pytest.raises(AwaitingApproval) as caught:
        permissions_replace_or_propose(
            actor=ada, group_id=READERS, permissions=wanted, fingerprint=preview.fingerprint
        )
    GroupPermission.objects.filter(group_id=READERS).delete()  # someone changed the group meanwhile

    with pytest.raises(StaleChange):
        proposal_approve(actor=bea, proposal_id=caught.value.proposal.pk)

    caught.value.proposal.refresh_from_db()
    assert (
        caught.value.proposal.status == "rejected"
        and "propose it again" in caught.value.proposal.decision_reason
    )
    assert not GroupPermission.objects.filter(group_id=READERS).exists()


def test_a_proposal_is_rejected_with_a_reason(workspace):
    with pytest.raises(AwaitingApproval) as caught:
        permissions_add_or_propose(
            actor=administrator(username="ada"), group_id=READERS, permissions=[OWNER_GRANT]
        )
    bea = administrator(username="bea")

    with pytest.raises(InvalidInput, match="Say why"):
        proposal_reject(actor=bea, proposal_id=caught.value.proposal.pk, reason="")
    rejected = proposal_reject(actor=bea, proposal_id=caught.value.proposal.pk, reason="Use a narrower role")

    assert rejected.status == "rejected" and rejected.decision_reason == "Use a narrower role"
    assert not GroupPermission.objects.filter(group_id=READERS, role_id=OWNER_GRANT.role_id).exists()
