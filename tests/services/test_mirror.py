"""The workspace mirror: full syncs and group refreshes against the sandbox, crash safety,
the shared read budget, drift detection, and the cheaper writes it allows."""

import math
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from groups_app.models import AuditEntry, InviteRecord, MirrorGroup, MirrorMember, MirrorRole, SyncRun
from groups_app.segment import Label, Permission, Resource, SegmentClient
from groups_app.services.membership import group_members_add, group_members_remove
from groups_app.services.mirror import selectors
from groups_app.services.mirror import sync as mirror_sync
from groups_app.services.mirror.sync import ReadBudget, refresh_group, sync_workspace
from groups_app.services.segment_client import get_client
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk

pytestmark = pytest.mark.django_db

GROUP = "groupData000000000000000000001"
LABELLED = [{"id": "ws1", "type": "WORKSPACE", "labels": [{"key": "environment", "value": "prod"}]}]


@pytest.fixture
def workspace(db):
    """Two groups: Data Engineering (two users, one invite, a labelled grant) and an empty one."""
    alice = WorkspaceUser.objects.create(name="Alice Liddell", email="alice@example.com")
    bob = WorkspaceUser.objects.create(name="Bob", email="bob@example.com")
    WorkspaceUser.objects.create(name="Carol", email="carol@example.com")
    reader = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    group = UserGroup.objects.create(id=GROUP, name="Data Engineering")
    Membership.objects.create(group=group, user=alice)
    Membership.objects.create(group=group, user=bob)
    Invite.objects.create(group=group, email="newbie@example.com")
    GroupPermission.objects.create(group=group, role=reader, resources=LABELLED)
    UserGroup.objects.create(id="groupEmpty00000000000000000002", name="Empty")
    return group


class Counting:
    """Counts the upstream calls a client makes, by method and path."""

    def __init__(self, client: SegmentClient) -> None:
        self.calls: list[tuple[str, str]] = []
        original = client._request

        def counted(method, path, **kwargs):
            self.calls.append((method, path))
            return original(method, path, **kwargs)

        client._request = counted
        self.client = client


@pytest.fixture
def counted():
    client = get_client()
    counting = Counting(client)
    yield counting
    del client._request  # back to the class's method


def members_of(group_id):
    return {
        (m.email, m.kind, m.name)
        for m in MirrorMember.objects.filter(group_id=group_id).only("email", "kind", "name")
    }


def test_a_full_sync_copies_groups_members_invites_labelled_permissions_and_roles(workspace):
    run = sync_workspace(trigger="test")

    assert run.status == SyncRun.Status.SUCCEEDED and run.finished_at >= run.started_at
    assert (run.group_count, run.member_count, run.observed_count) == (2, 3, 0)
    stored = MirrorGroup.objects.get(group_id=GROUP)
    assert (stored.name, stored.member_count, stored.user_count, stored.invite_count) == (
        "Data Engineering",
        3,
        2,
        1,
    )
    assert members_of(GROUP) == {
        ("alice@example.com", "user", "Alice Liddell"),
        ("bob@example.com", "user", "Bob"),
        ("newbie@example.com", "invite", ""),
    }
    (permission,) = selectors.stored_permissions(stored)
    assert permission == Permission(
        role_id="roleReader0000000000000000002",
        role_name="Source Read-only",
        resources=(Resource("ws1", "WORKSPACE", labels=(Label("environment", "prod"),)),),
    )
    assert list(MirrorRole.objects.values_list("name", flat=True)) == ["Source Read-only"]


def test_sync_calls_are_one_per_page_of_each_listing(workspace, counted, settings):
    settings.MIRROR_PAGE_SIZE = 2
    for n in range(3):
        UserGroup.objects.create(name=f"Team {n}")

    run = sync_workspace(trigger="test", client=counted.client)

    # roles 1 item, groups 5, Data Engineering 2 users + 1 invite, the rest empty (never read);
    # then the resource names: the workspace, and one empty page each of sources, warehouses,
    # spaces and the four kinds of functions.
    expected = sum(math.ceil(items / 2) for items in (1, 5, 2, 1))
    resource_names = 1 + 3 + 4
    assert run.calls == len(counted.calls) == expected + resource_names == 14
    assert run.pages == expected + 7 and run.page_size == 2


def test_a_refused_page_size_falls_back_to_200_and_is_remembered(workspace, settings):
    settings.MIRROR_PAGE_SIZE = 5000  # the sandbox, like the API, accepts 1-1000

    run = sync_workspace(trigger="test")

    assert run.status == SyncRun.Status.SUCCEEDED and run.page_size == 200
    assert "Segment refused 5000 items a page; read 200 a page." in run.errors
    assert cache.get(mirror_sync.PAGE_SIZE_KEY) == 200
    assert MirrorGroup.objects.count() == 2


def test_a_sync_never_runs_twice_at_once(workspace):
    now = timezone.now()
    SyncRun.objects.create(kind=SyncRun.Kind.FULL, started_at=now, heartbeat_at=now)

    assert sync_workspace(trigger="test") is None
    assert not MirrorGroup.objects.exists()


def test_a_sync_whose_process_died_is_abandoned_and_the_next_one_starts_over(workspace, settings):
    long_ago = timezone.now() - timedelta(seconds=settings.MIRROR_SYNC_STALE_SECONDS + 1)
    dead = SyncRun.objects.create(kind=SyncRun.Kind.FULL, started_at=long_ago, heartbeat_at=long_ago)

    run = sync_workspace(trigger="test")

    dead.refresh_from_db()
    assert dead.status == SyncRun.Status.ABANDONED and "process running it stopped" in dead.errors[0]
    assert run.status == SyncRun.Status.SUCCEEDED and MirrorGroup.objects.count() == 2


def test_a_sync_that_fails_midway_leaves_the_mirror_as_it_was(workspace, settings):
    sync_workspace(trigger="baseline")
    before = members_of(GROUP)
    Membership.objects.filter(user__email="bob@example.com").delete()
    UserGroup.objects.filter(id=GROUP).update(name="Renamed")
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("list_invites_from_user_group", "503")

    run = sync_workspace(trigger="test")

    assert run.status == SyncRun.Status.FAILED and "Unavailable" in run.errors[-1]
    assert members_of(GROUP) == before
    assert MirrorGroup.objects.get(group_id=GROUP).name == "Data Engineering"
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED).exists()


def test_a_crash_in_the_middle_of_a_sync_changes_nothing_and_is_recorded(workspace, monkeypatch):
    sync_workspace(trigger="baseline")
    UserGroup.objects.filter(id=GROUP).update(name="Renamed")
    read = mirror_sync.Reader.snapshot

    def crash_on_the_second_group(self, group, **kwargs):
        if group.name == "Renamed":
            raise RuntimeError("worker killed")
        return read(self, group, **kwargs)

    monkeypatch.setattr(mirror_sync.Reader, "snapshot", crash_on_the_second_group)

    with pytest.raises(RuntimeError):
        sync_workspace(trigger="test")

    run = SyncRun.objects.first()
    assert run.status == SyncRun.Status.FAILED and "worker killed" in run.errors[-1]
    assert MirrorGroup.objects.get(group_id=GROUP).name == "Data Engineering"
    monkeypatch.undo()
    assert sync_workspace(trigger="after the crash").status == SyncRun.Status.SUCCEEDED
    assert MirrorGroup.objects.get(group_id=GROUP).name == "Renamed"


def test_the_read_budget_is_shared_through_the_cache():
    clock = [1000.0]
    waits = []

    def sleep(seconds):
        waits.append(round(seconds, 2))
        clock[0] += seconds

    first = ReadBudget(2, sleep=sleep, clock=lambda: clock[0])
    second = ReadBudget(2, sleep=sleep, clock=lambda: clock[0])  # another process, the same cache

    first.take()
    second.take()
    first.take()  # the third read of this second waits for the next one

    assert waits == [1.0]
    assert clock[0] == 1001.0


# -- drift ------------------------------------------------------------------------------------------


def test_changes_made_directly_through_the_api_are_observed_and_mailed_to_administrators(workspace):
    administrator(username="ada", email="ada@example.com")
    sync_workspace(trigger="baseline")
    api = get_client()  # the sandbox API, as Segment's app, Terraform or a script would use it
    api.add_users_to_user_group(GROUP, ["carol@example.com"])
    api.remove_users_from_user_group(GROUP, ["bob@example.com"])
    api.replace_permissions_for_user_group(
        GROUP, [Permission("roleReader0000000000000000002", resources=(Resource("src9", "SOURCE"),))]
    )
    api.update_user_group(GROUP, "Data Engineering (prod)")
    created = api.create_user_group("Shadow IT")
    api.delete_user_group("groupEmpty00000000000000000002")

    run = sync_workspace(trigger="test")

    assert run.observed_count == 3
    entries = {e.group_id: e for e in AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED)}
    changed = entries[GROUP]
    assert changed.actor_username == "outside Group Admin" and changed.status == "succeeded"
    assert changed.details["added"] == ["carol@example.com"]
    assert changed.details["removed"] == ["bob@example.com"]
    assert changed.details["old_name"] == "Data Engineering"
    assert changed.details["new_name"] == "Data Engineering (prod)"
    assert changed.details["permissions_before"][0]["resources"][0]["labels"] == [
        {"key": "environment", "value": "prod"}
    ]
    assert changed.details["permissions_after"][0]["resources"][0]["id"] == "src9"
    assert changed.details["previous_reading"] and changed.details["reading"]
    assert changed.details["sync"] == run.pk
    assert "added carol@example.com" in changed.summary and "removed bob@example.com" in changed.summary
    assert entries[created.id].details["group_created"] is True
    assert entries["groupEmpty00000000000000000002"].details["group_deleted"] is True
    (message,) = mail.outbox
    assert message.to == ["ada@example.com"]
    assert "3 changes observed outside Group Admin" in message.subject
    assert f"/audit/{changed.pk}/" in message.body


def test_changes_made_through_group_admin_are_not_observed(workspace):
    sync_workspace(trigger="baseline")
    hana = help_desk(username="hana")
    group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com", "stranger@example.org"])
    group_members_remove(actor=hana, group_id=GROUP, emails=["bob@example.com"])

    run = sync_workspace(trigger="test")

    assert run.status == SyncRun.Status.SUCCEEDED and run.observed_count == 0
    assert members_of(GROUP) >= {
        ("carol@example.com", "user", "Carol"),
        ("stranger@example.org", "invite", ""),
    }
    assert not mail.outbox


def test_a_failed_change_does_not_explain_a_difference(workspace, settings):
    sync_workspace(trigger="baseline")
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", "429")
    with pytest.raises(Exception, match="rate"):
        group_members_add(actor=help_desk(username="hana"), group_id=GROUP, emails=["carol@example.com"])
    get_client().add_users_to_user_group(GROUP, ["carol@example.com"])  # then someone did it elsewhere

    sync_workspace(trigger="test")

    (observed,) = AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED)
    assert observed.details["added"] == ["carol@example.com"]


def test_the_first_sync_is_a_baseline_not_a_flood_of_observed_changes(workspace):
    sync_workspace(trigger="first")

    assert not AuditEntry.objects.exists()


def test_accepting_an_invite_is_no_change_of_access(workspace):
    sync_workspace(trigger="baseline")
    Invite.objects.filter(email="newbie@example.com").delete()
    newbie = WorkspaceUser.objects.create(name="Newbie", email="newbie@example.com")
    Membership.objects.create(group=workspace, user=newbie)

    run = sync_workspace(trigger="test")

    assert run.observed_count == 0
    assert ("newbie@example.com", "user", "Newbie") in members_of(GROUP)


# -- refreshes and cheaper writes --------------------------------------------------------------------


def test_a_refresh_after_a_change_updates_the_group_and_verifies_invites(workspace):
    from groups_app.tasks import refresh_group as refresh_task

    sync_workspace(trigger="baseline")
    group_members_add(
        actor=help_desk(username="hana"), group_id=GROUP, emails=["carol@example.com", "new@example.org"]
    )

    refresh_task.call(GROUP, trigger="test", verify_emails=["carol@example.com", "new@example.org"])

    assert ("new@example.org", "invite", "") in members_of(GROUP)
    assert list(InviteRecord.objects.values_list("email", flat=True)) == ["new@example.org"]
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED).exists()
    assert SyncRun.objects.filter(kind=SyncRun.Kind.GROUP, group_id=GROUP, status="succeeded").exists()


def test_refreshing_a_deleted_group_removes_it_from_the_mirror(workspace):
    sync_workspace(trigger="baseline")
    UserGroup.objects.filter(id=GROUP).delete()

    run = refresh_group(GROUP, trigger="test")

    assert run.status == SyncRun.Status.SUCCEEDED
    assert not MirrorGroup.objects.filter(group_id=GROUP).exists()
    assert not MirrorMember.objects.filter(group_id=GROUP).exists()
    (observed,) = AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED)
    assert observed.details["group_deleted"] is True


def test_a_full_sync_keeps_a_newer_refresh_of_a_group(workspace, monkeypatch):
    sync_workspace(trigger="baseline")
    read = mirror_sync.Reader.snapshot
    done = []

    def refresh_meanwhile(self, group, **kwargs):
        snapshot = read(self, group, **kwargs)
        if group.id == GROUP and not done:  # between this sync's read and its write, a change and its refresh
            done.append(True)
            WorkspaceUser.objects.get(email="carol@example.com").memberships.create(group=workspace)
            AuditEntry.objects.create(
                actor_username="hana",
                action=AuditEntry.Action.MEMBERS_ADD,
                group_id=GROUP,
                summary="hana added 1 member",
                details={"emails": ["carol@example.com"]},
                status="succeeded",
            )
            refresh_group(GROUP, trigger="change")
        return snapshot

    monkeypatch.setattr(mirror_sync.Reader, "snapshot", refresh_meanwhile)

    sync_workspace(trigger="test")

    assert ("carol@example.com", "user", "Carol") in members_of(GROUP)
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED).exists()


def a_big_mirrored_group(settings):
    settings.SEGMENT_PAGE_SIZE = 200
    group = UserGroup.objects.create(name="Everyone")
    users = WorkspaceUser.objects.bulk_create(
        WorkspaceUser(name=f"User {n}", email=f"user{n}@example.com") for n in range(1200)
    )
    Membership.objects.bulk_create(Membership(group=group, user=user) for user in users)
    elsewhere = UserGroup.objects.create(name="Elsewhere")
    Membership.objects.create(
        group=elsewhere, user=WorkspaceUser.objects.create(name="Ella", email="ella@example.com")
    )
    sync_workspace(trigger="baseline")
    return group


def test_adding_a_known_user_to_a_big_mirrored_group_makes_two_upstream_calls(db, counted, settings):
    group = a_big_mirrored_group(settings)
    counted.calls.clear()

    changed = group_members_add(
        actor=help_desk(username="hana"),
        group_id=group.id,
        emails=["ella@example.com", "user7@example.com"],
        client=counted.client,
    )
    result = changed.result
    assert changed.entry.action == "members.add" and changed.entry.status == "succeeded"

    assert counted.calls == [("GET", f"/groups/{group.id}"), ("POST", f"/groups/{group.id}/users")]
    assert result.added_users == ("ella@example.com",) and result.already_members == ("user7@example.com",)


def test_an_address_the_mirror_never_saw_as_a_user_is_told_apart_by_the_groups_invites(db, counted, settings):
    group = a_big_mirrored_group(settings)
    # A workspace user in no group: the mirror, which knows users through their groups, has not seen them.
    WorkspaceUser.objects.create(name="Noah", email="no.groups@example.com")
    counted.calls.clear()

    changed = group_members_add(
        actor=help_desk(username="hana"),
        group_id=group.id,
        emails=["newcomer@example.org", "no.groups@example.com"],
        client=counted.client,
    )

    result = changed.result
    assert counted.calls == [
        ("GET", f"/groups/{group.id}"),
        ("POST", f"/groups/{group.id}/users"),
        ("GET", f"/groups/{group.id}/invites"),
    ]
    assert result.invited == ("newcomer@example.org",) and result.added_users == ("no.groups@example.com",)
    assert changed.entry.details["invited"] == ["newcomer@example.org"]
    assert changed.entry.details["added_users"] == ["no.groups@example.com"]
    assert Invite.objects.filter(group=group, email="newcomer@example.org").exists()


def test_a_group_the_mirror_does_not_hold_is_read_whole_as_before(workspace, counted):
    changed = group_members_add(
        actor=help_desk(username="hana"), group_id=GROUP, emails=["carol@example.com"], client=counted.client
    )
    result = changed.result
    assert changed.entry.action == "members.add" and changed.entry.status == "succeeded"

    assert result.added_users == ("carol@example.com",)
    assert ("GET", f"/groups/{GROUP}/users") in counted.calls


def test_a_review_snapshots_a_fresh_refresh_of_its_group(workspace):
    from groups_app.services.reviews import review_start

    sync_workspace(trigger="baseline")
    get_client().add_users_to_user_group(GROUP, ["carol@example.com"])

    started = review_start(actor=administrator(username="ada"), group_id=GROUP)

    emails = set(started.review.items.values_list("email", flat=True))
    assert "carol@example.com" in emails and len(emails) == 4
    assert ("carol@example.com", "user", "Carol") in members_of(GROUP)
    assert SyncRun.objects.filter(kind=SyncRun.Kind.GROUP, trigger__startswith="review started").exists()


def test_a_silent_group_refresh_is_abandoned_after_two_minutes(workspace):
    three_minutes_ago = timezone.now() - timedelta(minutes=3)
    SyncRun.objects.create(
        kind=SyncRun.Kind.GROUP, group_id=GROUP, started_at=three_minutes_ago, heartbeat_at=three_minutes_ago
    )

    run = refresh_group(GROUP, trigger="test")

    assert run is not None and run.status == SyncRun.Status.SUCCEEDED
    assert SyncRun.objects.filter(group_id=GROUP, status=SyncRun.Status.ABANDONED).count() == 1
