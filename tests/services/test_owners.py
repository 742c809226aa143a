"""Group owners: the rule book's owner rules, owners deciding requests (and only for their groups),
changing members of groups they own, notifications, and setting owners one by one or from a CSV."""

import pytest
from django.core import mail
from django.core.management import call_command

from groups_app.models import AccessRequest, AuditEntry, GroupOwner
from groups_app.roles import CHANGE_MEMBERSHIP, CHANGE_PERMISSIONS, HANDLE_ACCESS_REQUESTS
from groups_app.rules import book
from groups_app.rules.book import Approval, ProposedChange, Verdict
from groups_app.segment import Permission, Resource
from groups_app.segment import UserGroup as SegmentGroup
from groups_app.services.approvals.access_requests import (
    access_request_approve,
    access_request_deny,
    access_request_file,
)
from groups_app.services.changes import RuleRefused
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.membership import group_members_add, group_members_remove
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.owners import (
    group_owner_add,
    group_owner_remove,
    owners_csv_rows,
    owners_import,
    requests_for_owned_groups,
)
from groups_app.services.reviews import review_start
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import UserFactory, administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"
OTHERS = "groupOthers00000000000000001"
OWNERS = "groupOwners00000000000000001"


@pytest.fixture
def workspace(db):
    owner_role = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    reader_role = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    others = UserGroup.objects.create(id=OTHERS, name="Others")
    privileged = UserGroup.objects.create(id=OWNERS, name="Owners")
    GroupPermission.objects.create(
        group=readers, role=reader_role, resources=[{"id": "src1", "type": "SOURCE"}]
    )
    GroupPermission.objects.create(
        group=others, role=reader_role, resources=[{"id": "src2", "type": "SOURCE"}]
    )
    GroupPermission.objects.create(
        group=privileged, role=owner_role, resources=[{"id": "ws1", "type": "WORKSPACE"}]
    )
    for name in ("alice", "bob", "olga"):
        WorkspaceUser.objects.create(name=name.title(), email=f"{name}@example.com")
    Membership.objects.create(group=readers, user=WorkspaceUser.objects.get(email="alice@example.com"))
    return {"readers": readers, "others": others, "owners": privileged}


@pytest.fixture
def admin(db):
    return administrator(username="ada", email="ada@example.com")


@pytest.fixture
def olga(db):
    """A Viewer who owns Readers and the privileged Owners group."""
    user = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=user, email=user.email, identity="olga@example.com"
    )
    GroupOwner.objects.create(
        group_id=OWNERS, group_name="Owners", user=user, email=user.email, identity="olga@example.com"
    )
    return user


@pytest.fixture
def bob(db):
    return viewer(username="bob", email="bob@example.com")


def emails_of(group_id):
    users = set(Membership.objects.filter(group_id=group_id).values_list("user__email", flat=True))
    return users | set(Invite.objects.filter(group_id=group_id).values_list("email", flat=True))


def readers_group(privileged=False):
    permissions = (
        (Permission("roleOwner00000000000000000001", "Workspace Owner", (Resource("ws1", "WORKSPACE"),)),)
        if privileged
        else ()
    )
    return SegmentGroup(
        id=OWNERS if privileged else READERS,
        name="Owners" if privileged else "Readers",
        member_count=1,
        permissions=permissions,
    )


# --- The rule book ---------------------------------------------------------------------------


def test_an_owner_without_the_role_may_change_members_and_decide_requests_of_their_group_only(olga):
    assert book.may_act(olga, CHANGE_MEMBERSHIP, group_id=READERS)
    assert book.may_act(olga, HANDLE_ACCESS_REQUESTS, group_id=READERS)
    assert not book.may_act(olga, CHANGE_MEMBERSHIP, group_id=OTHERS)
    assert not book.may_act(olga, HANDLE_ACCESS_REQUESTS)
    assert not book.may_act(olga, CHANGE_PERMISSIONS, group_id=READERS)


def test_an_owner_named_by_email_owns_the_group_under_any_spelling_of_it(db):
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", email="Olga+x@Example.com", identity="olga@example.com"
    )
    account = viewer(username="olga", email="OLGA@example.com")

    assert ProposedChange(actor=account, permission=CHANGE_MEMBERSHIP, group_id=READERS).is_group_owner
    assert not ProposedChange(
        actor=viewer(username="eve", email="eve@example.com"), permission=CHANGE_MEMBERSHIP, group_id=READERS
    ).is_group_owner


def test_an_owner_may_not_change_a_privileged_group_directly(olga):
    decision = book.decide(
        ProposedChange(
            actor=olga,
            permission=CHANGE_MEMBERSHIP,
            group=readers_group(privileged=True),
            adds=("bob@example.com",),
            new_members=("bob@example.com",),
        )
    )

    assert decision.verdict == Verdict.REFUSED and decision.rule == "privileged_group"


def test_an_owners_approval_for_a_privileged_group_needs_an_administrator_too(olga):
    approval = Approval(approved_by=olga, source=None, requested_by_id=None, for_email="bob@example.com")
    decision = book.decide(
        ProposedChange(
            actor=olga,
            permission=CHANGE_MEMBERSHIP,
            group=readers_group(privileged=True),
            adds=("bob@example.com",),
            approval=approval,
        )
    )

    assert decision.verdict == Verdict.NEEDS_SECOND_PERSON and decision.rule == "owner_approval"


def test_an_owner_never_approves_for_themselves(olga):
    approval = Approval(approved_by=olga, source=None, requested_by_id=olga.pk, for_email="olga@example.com")
    decision = book.decide(
        ProposedChange(
            actor=olga,
            permission=CHANGE_MEMBERSHIP,
            group=readers_group(),
            adds=("olga@example.com",),
            approval=approval,
        )
    )

    assert decision.verdict == Verdict.REFUSED and decision.rule == "self_approval"


# --- Owners through the pipeline and the approvals layer ----------------------------------------


def test_a_viewer_who_owns_a_group_approves_a_request_for_it_and_the_person_is_added(workspace, olga, bob):
    filed = access_request_file(actor=bob, group_id=READERS, justification="Dashboards").filed[0]

    access_request_approve(actor=olga, access_request_id=filed.pk)

    filed.refresh_from_db()
    assert filed.status == AccessRequest.Status.PROVISIONED
    assert "bob@example.com" in emails_of(READERS)
    assert filed.provisioning_entry.actor_username == "olga"


def test_the_same_viewer_cannot_approve_a_request_for_a_group_they_do_not_own(workspace, olga, bob):
    filed = access_request_file(actor=bob, group_id=OTHERS, justification="Dashboards").filed[0]

    with pytest.raises(NotAllowed):
        access_request_approve(actor=olga, access_request_id=filed.pk)
    with pytest.raises(NotAllowed):
        access_request_deny(actor=olga, access_request_id=filed.pk, reason="No")

    filed.refresh_from_db()
    assert filed.status == AccessRequest.Status.PENDING
    assert "bob@example.com" not in emails_of(OTHERS)
    refused = AuditEntry.objects.filter(access_request=filed, status=AuditEntry.Status.REFUSED)
    assert refused.count() == 2


def test_an_owner_cannot_approve_their_own_request(workspace, olga):
    filed = access_request_file(actor=olga, group_id=READERS, justification="Me too").filed[0]

    with pytest.raises(NotAllowed):
        access_request_approve(actor=olga, access_request_id=filed.pk)
    assert "olga@example.com" not in emails_of(READERS)


def test_an_owners_approval_of_a_privileged_group_waits_for_an_administrator(workspace, olga, bob, admin):
    filed = access_request_file(actor=bob, group_id=OWNERS, justification="On call").filed[0]

    access_request_approve(actor=olga, access_request_id=filed.pk)

    filed.refresh_from_db()
    assert filed.status == AccessRequest.Status.PENDING
    assert filed.owner_approved_by_username == "olga"
    assert "bob@example.com" not in emails_of(OWNERS)
    with pytest.raises(InvalidInput):  # the owner's approval counts once
        access_request_approve(actor=olga, access_request_id=filed.pk)

    access_request_approve(actor=admin, access_request_id=filed.pk)

    filed.refresh_from_db()
    assert filed.status == AccessRequest.Status.PROVISIONED
    assert "bob@example.com" in emails_of(OWNERS)


def test_an_owner_adds_and_removes_members_of_a_group_they_own_but_not_of_others(workspace, olga):
    group_members_add(actor=olga, group_id=READERS, emails=["bob@example.com"])
    group_members_remove(actor=olga, group_id=READERS, emails=["alice@example.com"])

    assert emails_of(READERS) == {"bob@example.com"}
    with pytest.raises(RuleRefused):
        group_members_add(actor=olga, group_id=OTHERS, emails=["bob@example.com"])
    with pytest.raises(RuleRefused) as refused:
        group_members_add(actor=olga, group_id=READERS, emails=["olga@example.com"])
    assert refused.value.decision.rule == "self_change"
    with pytest.raises(RuleRefused) as refused:
        group_members_add(actor=olga, group_id=OWNERS, emails=["bob@example.com"])
    assert refused.value.decision.rule == "privileged_group"


def test_new_requests_go_to_the_groups_owners_first(workspace, olga, bob):
    help_desk(username="hana", email="hana@example.com")

    access_request_file(actor=bob, group_id=READERS, justification="Dashboards")

    assert [message.to for message in mail.outbox] == [["olga@example.com"]]


def test_requests_for_a_group_without_owners_go_to_help_desk_and_administrators(workspace, olga, bob):
    help_desk(username="hana", email="hana@example.com")

    access_request_file(actor=bob, group_id=OTHERS, justification="Dashboards")

    assert [message.to for message in mail.outbox] == [["hana@example.com"]]


def test_an_owner_sees_the_open_requests_of_the_groups_they_own(workspace, olga, bob):
    mine = access_request_file(actor=bob, group_id=READERS, justification="x").filed[0]
    access_request_file(actor=bob, group_id=OTHERS, justification="x")

    assert list(requests_for_owned_groups(olga)) == [mine]


# --- Setting owners ------------------------------------------------------------------------------


def test_an_administrator_adds_and_removes_an_owner_each_audited(admin, bob):
    owner = group_owner_add(actor=admin, group_id=READERS, group_name="Readers", owner="bob")

    assert owner.user == bob and owner.identity == "bob@example.com"
    with pytest.raises(InvalidInput) as twice:
        group_owner_add(actor=admin, group_id=READERS, group_name="Readers", owner="Bob+owner@EXAMPLE.com")
    assert twice.value.field_errors["owner"] == "bob (bob@example.com) already owns Readers."

    group_owner_remove(actor=admin, group_id=READERS, owner_id=owner.pk)

    assert not GroupOwner.objects.exists()
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "status"))
    assert actions == [
        ("owner.add", "succeeded"),
        ("owner.add", "refused"),
        ("owner.remove", "succeeded"),
    ]


def test_only_administrators_set_owners_and_the_refusal_is_audited(bob):
    with pytest.raises(NotAllowed):
        group_owner_add(actor=bob, group_id=READERS, group_name="Readers", owner="bob@example.com")

    assert not GroupOwner.objects.exists()
    assert AuditEntry.objects.get().status == AuditEntry.Status.REFUSED


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Give the owner's email or username."),
        ("nobody", "There is no account named nobody; give their email instead."),
        ("a\x00b@example.com", "Give the owner's email or username."),
        ("x" * 400 + "@example.com", "Give the owner's email or username."),
    ],
)
def test_an_owner_that_names_nobody_is_refused_next_to_the_field(admin, typed, message):
    with pytest.raises(InvalidInput) as refused:
        group_owner_add(actor=admin, group_id=READERS, group_name="Readers", owner=typed)

    assert refused.value.field_errors == {"owner": message}
    assert not GroupOwner.objects.exists()


def test_a_look_alike_address_is_refused_as_an_owner(admin):
    with pytest.raises(InvalidInput):
        group_owner_add(actor=admin, group_id=READERS, group_name="Readers", owner="olga@ex\u0430mple.com")


CSV = """group,owner
Readers,olga@example.com
groupOthers00000000000000001,bob
Readers,Olga@Example.com
Nowhere,bob
Others,nobody
"""


def test_import_owners_dry_run_changes_nothing_and_apply_adds_and_audits(
    workspace, admin, bob, tmp_path, capsys
):
    sync_workspace(trigger="test")
    path = tmp_path / "owners.csv"
    path.write_text(CSV)

    with pytest.raises(SystemExit):
        call_command("import_owners", str(path), "--as", "ada")
    dry_run = capsys.readouterr()

    assert not GroupOwner.objects.exists()
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.OWNER_ADD).exists()
    assert "line 2: add olga@example.com → Readers" in dry_run.out
    assert "line 4: already an owner: olga@example.com" in dry_run.out
    assert "line 5: No group has the id or exact name 'Nowhere'" in dry_run.err
    assert "line 6: There is no account named nobody" in dry_run.err
    assert "Dry run: 2 owners would be added" in dry_run.out

    with pytest.raises(SystemExit):
        call_command("import_owners", str(path), "--as", "ada", "--apply")

    owners = set(GroupOwner.objects.values_list("group_id", "identity"))
    assert owners == {(READERS, "olga@example.com"), (OTHERS, "bob@example.com")}
    entries = AuditEntry.objects.filter(
        action=AuditEntry.Action.OWNER_ADD, status=AuditEntry.Status.SUCCEEDED
    )
    assert entries.count() == 2
    assert all(entry.details["imported"] for entry in entries)


def test_import_owners_refuses_someone_who_is_not_an_administrator(workspace, bob):
    with pytest.raises(NotAllowed):
        owners_import(actor=bob, rows=[(2, "Readers", "bob")], apply=True)
    assert not GroupOwner.objects.exists()


def test_a_group_name_that_several_groups_share_asks_for_the_id(workspace, admin):
    UserGroup.objects.create(id="groupTwin0000000000000000001", name="Readers")
    sync_workspace(trigger="test")

    result = owners_import(actor=admin, rows=[(2, "Readers", "bob@example.com")])

    assert result.rows[0].problem == "2 groups are named 'Readers'; give the group's id."


@pytest.mark.parametrize(
    "text",
    ["name,who\nReaders,bob\n", "group,owner\nReaders,b\x00ob\n"],
)
def test_an_owners_csv_without_its_columns_or_with_nul_bytes_is_refused(text):
    with pytest.raises(InvalidInput):
        owners_csv_rows(text)


def test_an_owner_without_any_role_decides_requests_for_their_group(workspace, bob):
    nobody = UserFactory(username="nora", email="nora@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=nobody, email=nobody.email, identity="nora@example.com"
    )
    filed = access_request_file(actor=bob, group_id=READERS, justification="x").filed[0]

    access_request_approve(actor=nobody, access_request_id=filed.pk)

    assert "bob@example.com" in emails_of(READERS)


def test_an_owner_is_the_default_reviewer_of_their_group(workspace, olga, admin):
    review = review_start(actor=admin, group_id=READERS).review

    assert review.reviewer == olga and review.reviewer_username == "olga"
    assert review_start(actor=admin, group_id=OTHERS).review.reviewer is None
