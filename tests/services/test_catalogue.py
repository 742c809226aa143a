"""The catalogue: what each group is for, what it grants by name, its owners; who may describe it."""

import pytest

from groups_app.models import AuditEntry, GroupOwner
from groups_app.services.catalogue import (
    catalogue_entries,
    catalogue_entry,
    catalogue_groups,
    group_about_set,
)
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.mirror.sync import sync_workspace
from sandbox.models import GroupPermission, Resource, Role, UserGroup
from tests.factories import administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"
OWNERS = "groupOwners00000000000000001"


@pytest.fixture
def workspace(db):
    owner_role = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    reader_role = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    Resource.objects.create(id="src1", type="SOURCE", name="Web site")
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    owners = UserGroup.objects.create(id=OWNERS, name="Owners")
    GroupPermission.objects.create(
        group=readers, role=reader_role, resources=[{"id": "src1", "type": "SOURCE"}]
    )
    GroupPermission.objects.create(
        group=owners, role=owner_role, resources=[{"id": "ws1", "type": "WORKSPACE"}]
    )
    sync_workspace(trigger="test")


def test_an_entry_names_what_the_group_grants_its_owners_and_what_it_is_for(workspace):
    olga = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=olga, email=olga.email, identity=olga.email
    )
    group_about_set(
        actor=olga,
        group_id=READERS,
        group_name="Readers",
        description="Read the web site's events",
        purpose="Analysts",
    )

    entry = catalogue_entry(READERS)

    assert entry.description == "Read the web site's events" and entry.purpose == "Analysts"
    assert entry.grants[0]["roleName"] == "Source Read-only"
    assert entry.grants[0]["resources"][0]["name"] == "Web site"
    assert entry.owners == ("olga (olga@example.com)",)
    assert not entry.is_privileged
    assert catalogue_entry(OWNERS).privileged_roles == ("Workspace Owner",)


def test_search_finds_groups_by_name_or_by_what_they_are_for(workspace):
    group_about_set(
        actor=administrator(username="ada", email="ada@example.com"),
        group_id=OWNERS,
        group_name="Owners",
        description="",
        purpose="On-call engineers",
    )

    assert [g.group_id for g in catalogue_groups(q="read")] == [READERS]
    assert [g.group_id for g in catalogue_groups(q="on-call")] == [OWNERS]
    assert [e.name for e in catalogue_entries(catalogue_groups())] == ["Owners", "Readers"]


def test_only_administrators_and_owners_describe_a_group_and_refusals_are_audited(workspace):
    with pytest.raises(NotAllowed):
        group_about_set(
            actor=help_desk(username="hana", email="hana@example.com"),
            group_id=READERS,
            group_name="Readers",
            description="x",
            purpose="",
        )

    assert catalogue_entry(READERS).description == ""
    assert AuditEntry.objects.get(action=AuditEntry.Action.GROUP_DESCRIBE).status == AuditEntry.Status.REFUSED


def test_text_with_nul_bytes_is_refused_next_to_its_field(workspace):
    with pytest.raises(InvalidInput) as refused:
        group_about_set(
            actor=administrator(username="ada", email="ada@example.com"),
            group_id=READERS,
            group_name="Readers",
            description="a\x00b",
            purpose="",
        )

    assert set(refused.value.field_errors) == {"description"}
