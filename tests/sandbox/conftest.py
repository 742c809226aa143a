import pytest

from groups_app.services.segment_client import get_client
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser

TOKEN = "sandbox-test-token"  # tests/settings.py: the default token is refused with DEBUG off
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def workspace(db):
    """A small sandbox workspace: three users, two roles, one group with two members and an invite."""
    alice = WorkspaceUser.objects.create(
        id="userAlice0000000000000000001", name="Alice", email="alice@example.com"
    )
    bob = WorkspaceUser.objects.create(id="userBob000000000000000000002", name="Bob", email="bob@example.com")
    carol = WorkspaceUser.objects.create(
        id="userCarol00000000000000000003", name="Carol", email="carol@example.com"
    )
    owner = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    reader = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    group = UserGroup.objects.create(id="groupData000000000000000000001", name="Data Engineering")
    Membership.objects.create(group=group, user=alice)
    Membership.objects.create(group=group, user=bob)
    Invite.objects.create(group=group, email="newbie@example.com")
    GroupPermission.objects.create(group=group, role=reader, resources=[{"id": "src1", "type": "SOURCE"}])
    return {"alice": alice, "bob": bob, "carol": carol, "owner": owner, "reader": reader, "group": group}


@pytest.fixture
def sandbox():
    """The client the dashboard uses in sandbox mode (in-process transport)."""
    return get_client()
