"""The sandbox speaks the Public API's contract, driven through the dashboard's own client."""

import pytest

from groups_app.segment import (
    AuthenticationFailed,
    NotFound,
    Permission,
    RateLimited,
    Resource,
    SegmentClient,
    Unavailable,
    ValidationFailed,
)
from groups_app.services.segment_client import SANDBOX_BASE_URL
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Invite, Membership, UserGroup
from sandbox.transport import SandboxAdapter
from tests.sandbox.conftest import TOKEN

pytestmark = pytest.mark.django_db

GROUP = "groupData000000000000000000001"


def test_list_and_get_user_groups(sandbox, workspace):
    UserGroup.objects.create(id="groupAnalytics0000000000000002", name="analytics")

    page = sandbox.list_user_groups(count=1)
    rest = sandbox.list_user_groups(count=1, cursor=page.next)

    assert [g.name for g in page.items + rest.items] == ["analytics", "Data Engineering"]
    assert page.total_entries == 2 and rest.next is None and rest.previous == page.current
    group = sandbox.get_user_group(GROUP)
    assert group.member_count == 3  # two users and one invite
    assert group.permissions == (
        Permission(workspace["reader"].id, "Source Read-only", (Resource("src1", "SOURCE"),)),
    )


def test_create_rename_delete(sandbox, workspace):
    created = sandbox.create_user_group("Growth")
    renamed = sandbox.update_user_group(created.id, "Growth Marketing")
    sandbox.delete_user_group(GROUP)

    assert len(created.id) == 27 and created.member_count == 0
    assert renamed.name == "Growth Marketing"
    assert not UserGroup.objects.filter(pk=GROUP).exists()
    assert (
        not Membership.objects.exists()
        and not Invite.objects.exists()
        and not GroupPermission.objects.exists()
    )


def test_add_users_makes_members_and_invites_case_insensitively(sandbox, workspace):
    group = sandbox.add_users_to_user_group(
        GROUP, ["CAROL@example.com", "alice@example.com", "Stranger@Example.org"]
    )

    assert group.member_count == 5  # alice already a member: no-op
    assert {u.email for u in sandbox.iter_users_from_user_group(GROUP)} == {
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    }
    assert set(sandbox.iter_invites_from_user_group(GROUP)) == {"newbie@example.com", "stranger@example.org"}


def test_replace_users_sets_exactly_the_list(sandbox, workspace):
    group = sandbox.replace_users_in_user_group(
        GROUP, ["carol@example.com", "bob@example.com", "fresh@example.com"]
    )

    assert group.member_count == 3
    assert [u.email for u in sandbox.iter_users_from_user_group(GROUP)] == [
        "bob@example.com",
        "carol@example.com",
    ]
    assert list(sandbox.iter_invites_from_user_group(GROUP)) == ["fresh@example.com"]


def test_remove_users_removes_members_and_invites_and_ignores_unknown(sandbox, workspace):
    sandbox.remove_users_from_user_group(
        GROUP, ["ALICE@example.com", "newbie@example.com", "ghost@example.com"]
    )

    assert sandbox.get_user_group(GROUP).member_count == 1


def test_add_and_replace_permissions(sandbox, workspace):
    owner, reader = workspace["owner"].id, workspace["reader"].id

    added = sandbox.add_permissions_to_user_group(
        GROUP, [Permission(owner, resources=(Resource("ws1", "WORKSPACE"),))]
    )
    replaced = sandbox.replace_permissions_for_user_group(
        GROUP, [Permission(reader, resources=(Resource("src2", "SOURCE"),))]
    )
    cleared = sandbox.replace_permissions_for_user_group(GROUP, [])

    assert [p.role_name for p in added] == ["Source Read-only", "Workspace Owner"]
    assert replaced == [Permission(reader, "Source Read-only", (Resource("src2", "SOURCE"),))]
    assert cleared == []


def test_list_roles(sandbox, workspace):
    assert [role.name for role in sandbox.list_roles().items] == ["Source Read-only", "Workspace Owner"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.create_user_group(""), "name"),
        (lambda c: c.create_user_group("x" * 101), "name"),
        (lambda c: c.create_user_group("data engineering"), "name"),
        (lambda c: c.update_user_group(GROUP, "   "), "name"),
        (
            lambda c: c.add_users_to_user_group(
                GROUP, ["ok@example.com", "x@y@z", "fine@example.com", "nope"]
            ),
            "emails.1",
        ),
        (lambda c: c.replace_users_in_user_group(GROUP, []), "emails"),
        (
            lambda c: c.add_permissions_to_user_group(GROUP, [Permission("roleMissing")]),
            "permissions.0.roleId",
        ),
        (
            lambda c: c.add_permissions_to_user_group(
                GROUP, [Permission("roleOwner00000000000000000001", resources=(Resource("x", "DATABASE"),))]
            ),
            "permissions.0.resources.0.type",
        ),
        (lambda c: c.list_user_groups(count=0), "pagination.count"),
        (lambda c: c.list_users_from_user_group(GROUP, count=1001), "pagination.count"),
        (lambda c: c.list_invites_from_user_group(GROUP, cursor="forged"), "pagination.cursor"),
    ],
)
def test_validation_errors_name_the_field(sandbox, workspace, call, field):
    with pytest.raises(ValidationFailed) as caught:
        call(sandbox)

    assert field in caught.value.field_errors


def test_cursor_of_another_listing_is_refused(sandbox, workspace):
    groups_cursor = sandbox.list_user_groups(count=1).current

    with pytest.raises(ValidationFailed):
        sandbox.list_users_from_user_group(GROUP, cursor=groups_cursor)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_user_group("groupMissing"),
        lambda c: c.delete_user_group("groupMissing"),
        lambda c: c.list_users_from_user_group("groupMissing"),
        lambda c: c.add_users_to_user_group("groupMissing", ["a@example.com"]),
        lambda c: c.remove_users_from_user_group("groupMissing", ["a@example.com"]),
        lambda c: c.replace_permissions_for_user_group("groupMissing", []),
    ],
)
def test_unknown_group_is_404(sandbox, workspace, call):
    with pytest.raises(NotFound):
        call(sandbox)


def test_wrong_token_is_401(workspace):
    client = SegmentClient(SANDBOX_BASE_URL, "not-the-token")
    client.session.mount("http://sandbox.internal/", SandboxAdapter())

    with pytest.raises(AuthenticationFailed):
        client.list_user_groups()


def test_rate_limit_reaches_client_as_rate_limited(workspace, settings):
    settings.SANDBOX_WRITE_LIMIT_PER_MINUTE = 2
    waits = []
    client = SegmentClient(SANDBOX_BASE_URL, TOKEN, max_retries=0, sleep=waits.append)
    client.session.mount("http://sandbox.internal/", SandboxAdapter())
    client.create_user_group("One")
    client.create_user_group("Two")

    with pytest.raises(RateLimited) as caught:
        client.create_user_group("Three")

    assert 0 < caught.value.retry_after <= 60
    assert not UserGroup.objects.filter(name="Three").exists()
    assert client.list_user_groups().total_entries == 3  # reads have their own budget


def test_injected_429_is_retried_by_the_client(sandbox, workspace, monkeypatch):
    waits = []
    monkeypatch.setattr(sandbox, "_sleep", waits.append)
    inject_fault("create_user_group", "429", times=1)

    assert sandbox.create_user_group("After a wait").name == "After a wait"
    assert waits == [1.0]


@pytest.mark.parametrize("kind", ["500", "503"])
def test_injected_server_error_on_mutation_is_unavailable_and_not_retried(sandbox, workspace, kind):
    inject_fault("add_users_to_user_group", kind, times=2)

    with pytest.raises(Unavailable, match="may or may not"):
        sandbox.add_users_to_user_group(GROUP, ["carol@example.com"])

    assert not Membership.objects.filter(user=workspace["carol"]).exists()
    # One call was used by the failed attempt, so exactly one injected failure is left.
    with pytest.raises(Unavailable):
        sandbox.add_users_to_user_group(GROUP, ["carol@example.com"])
    assert sandbox.add_users_to_user_group(GROUP, ["carol@example.com"]).member_count == 4


def test_injected_503_on_read_is_retried(sandbox, workspace, monkeypatch):
    monkeypatch.setattr(sandbox, "_sleep", lambda seconds: None)
    inject_fault("get_user_group", "503", times=2)

    assert sandbox.get_user_group(GROUP).name == "Data Engineering"


def test_injected_hang_times_out_in_process(workspace, settings):
    settings.SANDBOX_HANG_SECONDS = 5
    client = SegmentClient(SANDBOX_BASE_URL, TOKEN, timeout=(0.05, 0.05), max_retries=0)
    client.session.mount("http://sandbox.internal/", SandboxAdapter())
    inject_fault("list_roles", "hang")

    with pytest.raises(Unavailable, match="timed out"):
        client.list_roles()
    assert client.list_roles().items  # the fault was used up


def test_faults_from_settings(sandbox, workspace, settings):
    settings.SANDBOX_FAULTS = "delete_user_group=503*1"

    with pytest.raises(Unavailable):
        sandbox.delete_user_group(GROUP)
    sandbox.delete_user_group(GROUP)

    assert not UserGroup.objects.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("delete_user_group=502", "cannot read 'delete_user_group=502'"),
        ("delete_user_group=503*x", "cannot read"),
        ("delete_group=503", "unknown operation 'delete_group'"),
    ],
)
def test_a_malformed_fault_plan_stops_start_up_with_a_clear_message(settings, spec, message):
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    settings.SANDBOX_FAULTS = spec

    with pytest.raises(ImproperlyConfigured, match=message):
        apps.get_app_config("sandbox").ready()


def test_a_changed_fault_plan_takes_effect_even_with_a_shared_cache(sandbox, workspace, settings):
    settings.SANDBOX_FAULTS = "list_roles=503*1"
    with pytest.raises(Unavailable):
        SegmentClient(SANDBOX_BASE_URL, TOKEN, max_retries=0, session=sandbox.session).list_roles()

    settings.SANDBOX_FAULTS = "get_user_group=503*1"  # a restart with a new value; the cache stays

    with pytest.raises(Unavailable):
        SegmentClient(SANDBOX_BASE_URL, TOKEN, max_retries=0, session=sandbox.session).get_user_group(GROUP)
