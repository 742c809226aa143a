"""What is sent is what is checked: every address a change sends meets the rule book, compared as
canonical identities, whatever the mirror believes."""

import pytest

from groups_app.models import AccessRequest, AuditEntry, ChangeProposal
from groups_app.rules import book
from groups_app.segment import Permission, Resource
from groups_app.services.approvals.changes import members_add_or_file, permissions_add_or_propose
from groups_app.services.approvals.proposals import proposal_approve
from groups_app.services.changes import RuleRefused
from groups_app.services.errors import AwaitingApproval, InvalidInput, NotAllowed
from groups_app.services.membership import group_members_add, group_members_remove
from groups_app.services.mirror.selectors import mirrored_membership
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.permissions import (
    group_permissions_add,
    group_permissions_preview,
    group_permissions_replace,
)
from groups_app.services.segment_client import get_client
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_sources")]

OWNERS = "groupOwners00000000000000001"
READERS = "groupReaders0000000000000001"
OWNER_ROLE = "roleOwner00000000000000000001"


@pytest.fixture
def workspace(db):
    owner = Role.objects.create(id=OWNER_ROLE, name="Workspace Owner")
    reader = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    owners = UserGroup.objects.create(id=OWNERS, name="Owners")
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    GroupPermission.objects.create(group=owners, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    GroupPermission.objects.create(group=readers, role=reader, resources=[{"id": "src1", "type": "SOURCE"}])
    for name in ("alice", "ada"):
        user = WorkspaceUser.objects.create(name=name.title(), email=f"{name}@example.com")
        Membership.objects.create(group=owners, user=user)
        Membership.objects.create(group=readers, user=user)
    sync_workspace(trigger="test")  # the mirror lists alice and ada in both groups
    return {"owners": owners, "readers": readers}


def emails_of(group_id):
    users = set(Membership.objects.filter(group_id=group_id).values_list("user__email", flat=True))
    return users | set(Invite.objects.filter(group_id=group_id).values_list("email", flat=True))


def remove_in_segments_own_app(group_id, email):
    """A change made outside Group Admin, straight through the Public API; no sync follows."""
    get_client().remove_users_from_user_group(group_id, [email])


def test_re_adding_someone_removed_outside_to_a_privileged_group_needs_a_second_administrator(workspace):
    remove_in_segments_own_app(OWNERS, "alice@example.com")
    assert "alice@example.com" in mirrored_membership(OWNERS).emails  # the mirror is behind
    bea = administrator(username="bea", email="bea@example.com")

    changed = members_add_or_file(actor=bea, group_id=OWNERS, emails=["alice@example.com"])

    assert emails_of(OWNERS) == {"ada@example.com"}  # nothing reached Segment
    assert changed.result.awaiting_approval == ("alice@example.com",)
    assert changed.entry.status == AuditEntry.Status.FILED
    assert AccessRequest.objects.get().email == "alice@example.com"


@pytest.mark.parametrize("group_id", [READERS, OWNERS])
def test_adding_ones_own_address_back_is_refused_and_audited_whatever_the_mirror_says(workspace, group_id):
    remove_in_segments_own_app(group_id, "ada@example.com")
    ada = administrator(username="ada", email="ada@example.com")

    with pytest.raises(RuleRefused) as caught:
        members_add_or_file(actor=ada, group_id=group_id, emails=["ada@example.com"])

    assert caught.value.decision.rule == "self_change"
    assert "ada@example.com" not in emails_of(group_id)
    entry = AuditEntry.objects.get(action="members.add")
    assert entry.status == AuditEntry.Status.REFUSED and "cannot add yourself" in entry.error


@pytest.mark.parametrize(
    "spelling",
    [
        "ada+owner@example.com",
        "ADA@EXAMPLE.COM",
        "\uff41\uff44\uff41@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # full-width
        "ada@exam\u200bple.com",  # zero-width space
        "ada@exam\u00adple.com",  # soft hyphen
    ],
)
def test_no_spelling_of_ones_own_address_reaches_segment(workspace, spelling):
    remove_in_segments_own_app(READERS, "ada@example.com")
    ada = administrator(username="ada", email="ada@example.com")
    before = emails_of(READERS)

    with pytest.raises((RuleRefused, InvalidInput)):
        members_add_or_file(actor=ada, group_id=READERS, emails=[spelling])

    assert emails_of(READERS) == before
    assert not AuditEntry.objects.filter(status__in=["succeeded", "pending", "unknown"]).exists()


def test_an_administrator_approves_no_request_filed_for_a_spelling_of_their_own_address(workspace):
    from groups_app.services.approvals.access_requests import access_request_approve, access_request_file

    remove_in_segments_own_app(OWNERS, "ada@example.com")
    filed = access_request_file(
        actor=help_desk(username="hana", email="hana@example.com"),
        group_id=OWNERS,
        emails=["ada+owner@example.com"],
        justification="Needs owner access",
    ).filed[0]

    with pytest.raises(NotAllowed, match="cannot approve"):
        access_request_approve(
            actor=administrator(username="ada", email="Ada@Example.com"), access_request_id=filed.pk
        )

    assert emails_of(OWNERS) == {"alice@example.com"}
    assert AuditEntry.objects.get(action="request.approve").status == AuditEntry.Status.REFUSED


def test_an_account_without_an_email_cannot_make_changes(workspace):
    nobody = help_desk(username="nomail", email="")

    with pytest.raises(RuleRefused, match="no usable email address"):
        group_members_remove(actor=nobody, group_id=READERS, emails=["alice@example.com"])

    assert "alice@example.com" in emails_of(READERS)


def test_the_change_service_sends_every_typed_address_but_the_book_sees_them_all(workspace):
    hana = help_desk(username="hana", email="hana@example.com")

    changed = group_members_add(actor=hana, group_id=READERS, emails=["alice@example.com", "new@example.com"])

    assert changed.entry.details["emails"] == ["alice@example.com", "new@example.com"]
    assert changed.entry.summary == "hana added 1 member to Readers (2 addresses sent; 1 already in it)"


def test_a_decision_names_its_rule():
    decision = book.decide(book.ProposedChange(actor=None, permission="groups_app.change_membership"))

    assert decision.verdict == book.Verdict.REFUSED and decision.rule == "role"


# -- proposals -----------------------------------------------------------------------------------

OWNER_GRANT = Permission(OWNER_ROLE, resources=(Resource("ws1", "WORKSPACE"),))


def propose_owner_grant(actor):
    with pytest.raises(AwaitingApproval) as caught:
        permissions_add_or_propose(actor=actor, group_id=READERS, permissions=[OWNER_GRANT])
    return caught.value.proposal


def test_a_proposer_approving_their_own_proposal_is_refused_and_audited(workspace):
    ada = administrator(username="ada", email="ada@example.com")
    proposal = propose_owner_grant(ada)

    with pytest.raises(NotAllowed, match="cannot approve"):
        proposal_approve(actor=ada, proposal_id=proposal.pk)

    entry = AuditEntry.objects.get(action="permissions.approve")
    assert entry.status == AuditEntry.Status.REFUSED and entry.actor_username == "ada"
    proposal.refresh_from_db()
    assert proposal.status == ChangeProposal.Status.PENDING


def test_an_approved_proposal_links_exactly_its_own_entry_while_another_change_lands(workspace, monkeypatch):
    ada = administrator(username="ada", email="ada@example.com")
    bea = administrator(username="bea", email="bea@example.com")
    proposal = propose_owner_grant(ada)
    client = get_client()
    grant = client.add_permissions_to_user_group

    cy = administrator(username="cy", email="cy@example.com")

    def another_grant_lands_meanwhile(group_id, permissions):
        monkeypatch.setattr(client, "add_permissions_to_user_group", grant)
        other = Permission("roleReader0000000000000000002", resources=(Resource("src2", "SOURCE"),))
        group_permissions_add(actor=cy, group_id=READERS, permissions=[other], client=client)
        return grant(group_id, permissions)

    monkeypatch.setattr(client, "add_permissions_to_user_group", another_grant_lands_meanwhile)

    approved = proposal_approve(actor=bea, proposal_id=proposal.pk, client=client)

    grants = AuditEntry.objects.filter(group_id=READERS, action="permissions.add", status="succeeded")
    assert grants.first().actor_username == "cy"  # the newest grant of the group is someone else's
    assert approved.entry.actor_username == "bea" and approved.entry.proposal_id == proposal.pk
    assert approved.entry.details["added"][0]["roleName"] == "Workspace Owner"
    assert AuditEntry.objects.get(action="permissions.approve").status == AuditEntry.Status.SUCCEEDED


def test_a_proposal_shows_who_joined_while_the_group_was_not_privileged(workspace):
    ada = administrator(username="ada", email="ada@example.com")
    preview = group_permissions_preview(group_id=OWNERS, permissions=[])
    group_permissions_replace(
        actor=ada, group_id=OWNERS, permissions=[], fingerprint=preview.fingerprint, confirm_empty=True
    )
    group_members_add(
        actor=help_desk(username="hana", email="hana@example.com"),
        group_id=OWNERS,
        emails=["eve@example.com"],
    )

    with pytest.raises(AwaitingApproval) as caught:
        permissions_add_or_propose(actor=ada, group_id=OWNERS, permissions=[OWNER_GRANT])

    proposal = caught.value.proposal
    assert proposal.joined_since_privileged == ["eve@example.com"]
    assert proposal.last_privileged_at is not None
    assert {m["email"] for m in proposal.members} == {
        "alice@example.com",
        "ada@example.com",
        "eve@example.com",
    }
