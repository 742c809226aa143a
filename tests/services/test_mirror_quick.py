"""Quick passes of the mirror: the group listing, then only what changed, plus a share of the
groups read longest ago so that a swap (same member count) is still seen within the full period."""

import math
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from groups_app.models import AuditEntry, MirrorGroup, MirrorMember, MirrorRole, SyncRun
from groups_app.segment import Permission
from groups_app.segment import Resource as SegmentResource
from groups_app.segment import UserGroup as SegmentUserGroup
from groups_app.services.mirror import selectors
from groups_app.services.mirror import sync as mirror_sync
from groups_app.services.mirror.sync import rotation_share, sync_changed, sync_workspace
from groups_app.services.schedule import enqueue_due_jobs
from groups_app.services.segment_client import get_client
from sandbox.faults import inject_fault
from sandbox.models import Invite, Membership, Resource, Role, UserGroup, WorkspaceUser
from tests.services.test_mirror import GROUP, Counting, workspace  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

EMPTY = "groupEmpty00000000000000000002"


@pytest.fixture
def counted():
    client = get_client()
    counting = Counting(client)
    yield counting
    del client._request


@pytest.fixture
def teams(workspace):  # noqa: F811 - the fixture imported above
    """Five more groups of one user each: seven groups in all."""
    for n in range(5):
        team = UserGroup.objects.create(name=f"Team {n}")
        user = WorkspaceUser.objects.create(name=f"Member {n}", email=f"member{n}@example.com")
        Membership.objects.create(group=team, user=user)
    return workspace


def read_whole(counted, group_id):
    """The calls that read one group's members."""
    return [path for _, path in counted.calls if path.startswith(f"/groups/{group_id}/")]


def observed(group_id):
    return AuditEntry.objects.filter(action=AuditEntry.Action.OBSERVED, group_id=group_id)


def test_a_quick_pass_reads_the_listing_and_only_the_group_that_changed(teams, counted, settings):
    settings.MIRROR_PAGE_SIZE = 2
    sync_workspace(trigger="baseline")
    # The rotation's share this pass falls on the empty group (read longest ago): no call.
    MirrorGroup.objects.filter(group_id=EMPTY).update(read_at=timezone.now() - timedelta(hours=1))
    carol = WorkspaceUser.objects.create(name="Carol Two", email="carol2@example.com")
    Membership.objects.create(group=teams, user=carol)  # an outside change: 3 users, 1 invite
    counted.calls.clear()

    run = sync_changed(trigger="test", client=counted.client)

    assert run.kind == SyncRun.Kind.QUICK and run.status == SyncRun.Status.SUCCEEDED
    listing = math.ceil(7 / 2)
    changed_reads = math.ceil(3 / 2) + 1  # users in 2 pages, invites in 1
    assert run.calls == len(counted.calls) == listing + changed_reads
    assert [p for _, p in counted.calls].count("/groups") == listing
    assert len(read_whole(counted, GROUP)) == changed_reads
    assert (run.group_count, run.groups_read, run.rotated_count) == (7, 2, 1)
    (entry,) = observed(GROUP)
    assert entry.details["added"] == ["carol2@example.com"]
    assert MirrorMember.objects.filter(group_id=GROUP, email="carol2@example.com").exists()


def test_a_quick_pass_with_nothing_changed_reads_the_listing_and_its_rotation_share(teams, counted):
    sync_workspace(trigger="baseline")
    counted.calls.clear()

    run = sync_changed(trigger="test", client=counted.client)

    assert run.rotated_count == rotation_share(7) == 1
    assert run.groups_read == 1 and run.observed_count == 0
    assert len(counted.calls) <= 1 + 2  # the listing, and one group's users and invites at most


def test_a_swap_that_keeps_the_member_count_is_seen_within_the_full_period(teams, settings):
    settings.MIRROR_QUICK_SYNC_EVERY = 120
    settings.MIRROR_FULL_SYNC_EVERY = 7 * 120  # seven groups: one read whole at each pass
    sync_workspace(trigger="baseline")
    Membership.objects.filter(group=teams, user__email="bob@example.com").delete()
    dora = WorkspaceUser.objects.create(name="Dora", email="dora@example.com")
    Membership.objects.create(group=teams, user=dora)  # one out, one in: the count is the same
    passes = settings.MIRROR_FULL_SYNC_EVERY // settings.MIRROR_QUICK_SYNC_EVERY

    runs = [sync_changed(trigger=f"pass {n}") for n in range(passes)]

    assert all(run.status == SyncRun.Status.SUCCEEDED and run.groups_read == 1 for run in runs)
    (entry,) = observed(GROUP)
    assert entry.details["added"] == ["dora@example.com"]
    assert entry.details["removed"] == ["bob@example.com"]
    # Every group was read whole once in the period, one a pass: never all at once.
    assert {g.sync_id for g in MirrorGroup.objects.all()} == {run.pk for run in runs}


def test_a_quick_pass_sees_renames_permission_changes_new_and_deleted_groups(teams):
    sync_workspace(trigger="baseline")
    api = get_client()
    api.update_user_group(GROUP, "Data Engineering (prod)")
    created = api.create_user_group("Shadow IT")
    api.delete_user_group(EMPTY)

    run = sync_changed(trigger="test")

    assert run.status == SyncRun.Status.SUCCEEDED and run.observed_count == 3
    assert MirrorGroup.objects.get(group_id=GROUP).name == "Data Engineering (prod)"
    assert MirrorGroup.objects.filter(group_id=created.id).exists()
    assert not MirrorGroup.objects.filter(group_id=EMPTY).exists()
    assert observed(EMPTY).get().details["group_deleted"] is True
    assert observed(created.id).get().details["group_created"] is True


def test_an_accepted_invite_changes_nothing_a_quick_pass_reports(teams):
    sync_workspace(trigger="baseline")
    Invite.objects.filter(email="newbie@example.com").delete()
    newbie = WorkspaceUser.objects.create(name="Newbie", email="newbie@example.com")
    Membership.objects.create(group=teams, user=newbie)  # the count stays 3

    run = sync_changed(trigger="test")

    assert run.observed_count == 0 and not observed(GROUP).exists()


def test_the_first_quick_pass_is_a_full_sync_the_baseline(teams):
    run = sync_changed(trigger="schedule")

    assert run.kind == SyncRun.Kind.FULL and run.status == SyncRun.Status.SUCCEEDED
    assert "first sync" in run.trigger
    assert MirrorGroup.objects.count() == 7 and not AuditEntry.objects.exists()


def test_no_quick_pass_runs_beside_a_full_sync(teams):
    sync_workspace(trigger="baseline")
    now = timezone.now()
    SyncRun.objects.create(kind=SyncRun.Kind.FULL, started_at=now, heartbeat_at=now)

    assert sync_changed(trigger="test") is None
    assert not SyncRun.objects.filter(kind=SyncRun.Kind.QUICK).exists()


def test_the_mirror_is_as_of_the_last_quick_pass(teams):
    sync_workspace(trigger="baseline")

    run = sync_changed(trigger="test")

    assert selectors.mirror_freshness().as_of == run.started_at


def test_a_failure_midway_keeps_the_groups_already_written_whole(teams, settings):
    settings.MIRROR_SYNC_CONCURRENCY = 1
    sync_workspace(trigger="baseline")
    # The listing is by name: Analytics is read first (two users, no invite), then Empty.
    UserGroup.objects.filter(id=GROUP).update(name="Analytics")
    Invite.objects.filter(email="newbie@example.com").delete()
    Invite.objects.create(group_id=EMPTY, email="late@example.com")  # read next: its invites fail
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("list_invites_from_user_group", "503")

    run = sync_changed(trigger="test")

    assert run.status == SyncRun.Status.FAILED and run.groups_read == 1
    renamed = MirrorGroup.objects.get(group_id=GROUP)
    assert (renamed.name, renamed.member_count, renamed.invite_count) == ("Analytics", 2, 0)
    assert not MirrorMember.objects.filter(group_id=GROUP, email="newbie@example.com").exists()
    assert not MirrorMember.objects.filter(group_id=EMPTY).exists()  # as it was
    assert observed(GROUP).exists() and not observed(EMPTY).exists()


def test_the_rotation_share_spreads_a_full_reading_over_the_period(settings):
    settings.MIRROR_QUICK_SYNC_EVERY = 120
    settings.MIRROR_FULL_SYNC_EVERY = 24 * 3600

    assert rotation_share(2000) == 3  # 720 passes a day, 3 groups each: 2,160 >= 2,000
    assert rotation_share(10_000) == 14
    assert rotation_share(0) == 0
    assert rotation_share(1) == 1


def test_sync_mirror_changed_only_runs_a_quick_pass(teams):
    sync_workspace(trigger="baseline")
    out = StringIO()

    call_command("sync_mirror", "--changed-only", stdout=out)

    run = SyncRun.objects.filter(kind=SyncRun.Kind.QUICK).get()
    assert run.trigger == "manage.py sync_mirror --changed-only"
    assert out.getvalue().startswith(f"Changed groups (quick pass) #{run.pk} succeeded: 7 groups listed")


def test_the_worker_schedules_the_quick_pass_and_no_full_sync(db, settings):
    settings.MIRROR_QUICK_SYNC_EVERY = 120

    due = enqueue_due_jobs()

    assert "sync_changed" in due and "sync_workspace" not in due


def test_a_sync_holds_a_bounded_number_of_groups_in_memory(settings):
    """Reading side by side, at most twice the concurrency of groups are read and not yet
    written: memory follows MIRROR_SYNC_CONCURRENCY, not the workspace's size."""
    settings.MIRROR_SYNC_CONCURRENCY = 3
    held = {"read": 0, "written": 0, "most": 0}
    lock = threading.Lock()

    class Reader:
        def snapshot(self, group, *, trust_member_count):
            with lock:
                held["read"] += 1
                held["most"] = max(held["most"], held["read"] - held["written"])
            return group

    run = SyncRun(pk=1, started_at=timezone.now(), heartbeat_at=timezone.now())
    groups = [SegmentUserGroup(id=f"g{n}", name=f"G{n}", member_count=0) for n in range(200)]

    for _ in mirror_sync._snapshots(run, Reader(), iter(groups), concurrent=True):
        with lock:
            held["written"] += 1

    assert held["written"] == 200
    assert held["most"] <= 2 * 3


def test_a_quick_pass_reads_the_names_of_a_role_and_a_source_granted_since(teams, counted):
    sync_workspace(trigger="baseline")
    role = Role.objects.create(id="roleNew00000000000000000000009", name="Warehouse Admin")
    source = Resource.objects.create(id="srcNew1", type="SOURCE", name="Checkout events")
    api = get_client()
    api.add_permissions_to_user_group(
        GROUP, [Permission(role.id, resources=(SegmentResource(source.id, "SOURCE"),))]
    )
    counted.calls.clear()

    sync_changed(trigger="test", client=counted.client)
    again = sync_changed(trigger="again", client=counted.client)

    assert MirrorRole.objects.get(role_id=role.id).name == "Warehouse Admin"
    assert selectors.mirrored_resource_names()[("SOURCE", "srcNew1")] == "Checkout events"
    paths = [path for _, path in counted.calls]
    assert paths.count("/roles") == 1 and paths.count("/sources") == 1
    # The labelled workspace grant that nothing names is not looked for at every pass.
    assert again.calls <= 1 + 2


def test_a_quick_pass_whose_process_died_is_abandoned_after_two_minutes(teams):
    sync_workspace(trigger="baseline")
    silent = timezone.now() - timedelta(seconds=121)
    dead = SyncRun.objects.create(kind=SyncRun.Kind.QUICK, started_at=silent, heartbeat_at=silent)

    run = sync_changed(trigger="test")

    dead.refresh_from_db()
    assert dead.status == SyncRun.Status.ABANDONED and run.status == SyncRun.Status.SUCCEEDED
