"""Waiting for you: a second Administrator learns of a proposal, decides it from there, and is mailed."""

import pytest
from django.core import mail
from django.urls import reverse
from django.utils.html import escape

from groups_app.models import AccessRequest, AuditEntry, ChangeProposal
from groups_app.segment import Permission, Resource
from groups_app.services.approvals.changes import members_add_or_file, permissions_add_or_propose
from groups_app.services.approvals.inbox import inbox_for
from groups_app.services.audit import AuditRecord, complete, write_pending
from groups_app.services.errors import AwaitingApproval
from groups_app.services.mirror.sync import sync_workspace
from sandbox.models import GroupPermission, Role, UserGroup
from tests.factories import administrator, help_desk, viewer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_sources")]

READERS = "groupReaders0000000000000001"
OWNERS = "groupOwners00000000000000001"
OWNER_GRANT = Permission("roleOwner00000000000000000001", resources=(Resource("ws1", "WORKSPACE"),))


@pytest.fixture
def workspace(db):
    owner = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    reader = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    owners = UserGroup.objects.create(id=OWNERS, name="Owners")
    GroupPermission.objects.create(group=readers, role=reader, resources=[{"id": "src1", "type": "SOURCE"}])
    GroupPermission.objects.create(group=owners, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])


@pytest.fixture
def ada(workspace):
    return administrator(username="ada", email="ada@example.com")


@pytest.fixture
def bea(workspace):
    return administrator(username="bea", email="bea@example.com")


def propose(actor):
    with pytest.raises(AwaitingApproval) as caught:
        permissions_add_or_propose(actor=actor, group_id=READERS, permissions=[OWNER_GRANT])
    return caught.value.proposal


def test_a_second_administrator_sees_the_proposal_waiting_and_decides_it_from_there(client, ada, bea):
    proposal = propose(ada)
    client.force_login(bea)

    home = client.get(reverse("groups:list")).content.decode()
    inbox = client.get(reverse("groups:inbox")).content.decode()

    assert "1 proposal to decide" in home and escape(reverse("groups:inbox")) in home
    assert "1 proposal waiting" in inbox
    link = reverse("groups:detail", args=[READERS]) + "#proposals"
    assert f'href="{link}"' in inbox
    group_page = client.get(reverse("groups:detail", args=[READERS])).content.decode()
    assert reverse("groups:proposal-decide", args=[READERS, proposal.pk, "approve"]) in group_page

    client.post(reverse("groups:proposal-decide", args=[READERS, proposal.pk, "approve"]))

    proposal.refresh_from_db()
    assert proposal.status == ChangeProposal.Status.APPROVED
    assert "Nothing is waiting for you" in client.get(reverse("groups:inbox")).content.decode()


def test_the_proposer_is_not_asked_to_decide_their_own_proposal(client, ada, bea):
    propose(ada)
    client.force_login(ada)

    assert "Nothing is waiting for you" in client.get(reverse("groups:inbox")).content.decode()


def test_a_proposal_is_mailed_to_the_other_administrators_by_the_worker(ada, bea, enqueued):
    proposal = propose(ada)

    assert ("send_notification", ("proposal_filed", [proposal.pk]), {}) in enqueued()
    sent = [message for message in mail.outbox if "Proposed grant waiting" in message.subject]
    assert len(sent) == 1 and sent[0].to == ["bea@example.com"]
    assert "Workspace Owner" in sent[0].body and reverse("groups:inbox") in sent[0].body


def test_requests_to_decide_are_waiting_for_help_desk_but_not_for_the_requester(client, ada, bea):
    members_add_or_file(actor=ada, group_id=OWNERS, emails=["new@example.com"])
    hana = help_desk(username="hana", email="hana@example.com")

    client.force_login(bea)
    assert "1 access request to decide" in client.get(reverse("groups:inbox")).content.decode()
    client.force_login(ada)
    assert "access request" not in client.get(reverse("groups:inbox")).content.decode()
    client.force_login(hana)
    # Help desk may not approve for a privileged group, but sees the request waiting in the queue.
    assert "new@example.com" in client.get(reverse("groups:inbox")).content.decode()


def test_a_change_of_mine_with_an_unknown_outcome_waits_for_me_until_it_is_read_back(client, workspace):
    hana = help_desk(username="hana", email="hana@example.com")
    entry = write_pending(actor=hana, action="members.add", summary="hana added x", group_id=READERS)
    complete(AuditRecord(entry=entry), AuditEntry.Status.UNKNOWN, TimeoutError("no answer"))
    client.force_login(hana)

    assert (
        reverse("groups:audit-entry", args=[entry.pk]) in client.get(reverse("groups:inbox")).content.decode()
    )
    client.force_login(help_desk(username="other", email="other@example.com"))
    assert (
        reverse("groups:audit-entry", args=[entry.pk])
        not in client.get(reverse("groups:inbox")).content.decode()
    )


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("groups:inbox"))

    assert response.status_code == 302 and "login" in response["Location"]


def test_the_navigation_counts_what_is_waiting(client, ada, bea):
    propose(ada)
    client.force_login(bea)

    page = client.get(reverse("groups:inbox")).content.decode()

    assert '1<span class="visually-hidden"> waiting</span>' in page
    client.force_login(viewer(username="vera", email="vera@example.com"))
    assert 'visually-hidden"> waiting' not in client.get(reverse("groups:inbox")).content.decode()


def test_help_desk_is_not_told_a_privileged_groups_request_waits_for_them(client, workspace, ada):
    sync_workspace(trigger="test")  # the mirror knows Owners is privileged
    hugo = help_desk(username="hugo", email="hugo@example.com")
    filed = [
        AccessRequest.objects.create(
            group_id=group_id,
            group_name=name,
            email="x@example.com",
            requester_username="x",
            justification="j",
        )
        for group_id, name in ((OWNERS, "Owners"), (READERS, "Readers"))
    ]

    client.force_login(hugo)
    queue = client.get(reverse("groups:requests")).content.decode()

    assert inbox_for(hugo).access_requests == [filed[1]]  # only the one Help desk may decide
    assert 'title="Requests you can act on">1<' in queue
    assert f'value="{filed[0].pk}"' not in queue and f'value="{filed[1].pk}"' in queue
    assert "Not yours to decide" in queue
    assert inbox_for(ada).access_requests == filed
