"""Jobs: a change to one person across groups, sent by the worker item by item, each item its own
audit entry; cancelled, resumed after a worker died, and never sending an item twice."""

from datetime import timedelta
from itertools import pairwise

import pytest
from django.test import Client
from django.utils import timezone

from groups_app.models import AuditEntry, Job, JobItem
from groups_app.services.audit import write_pending
from groups_app.services.errors import InvalidInput
from groups_app.services.jobs import (
    JobNotFound,
    WriteBudget,
    job_cancel,
    job_for,
    job_run,
    jobs_resume,
    person_change_start,
)
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.segment_client import get_client
from sandbox.faults import inject_fault
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk

pytestmark = pytest.mark.django_db

EMAIL = "alice@example.com"


@pytest.fixture
def groups(db):
    """Alice in five groups, mirrored."""
    return alice_in_groups(5)


def alice_in_groups(count):
    alice = WorkspaceUser.objects.create(name="Alice Liddell", email=EMAIL)
    found = []
    for n in range(1, count + 1):
        group = UserGroup.objects.create(name=f"Team {n}")
        Membership.objects.create(group=group, user=alice)
        found.append(group)
    sync_workspace(trigger="test")
    return found


@pytest.fixture
def ada(db):
    return administrator(username="ada")


class CountingClient:
    """The sandbox client, counting the removals it sends (and running `during` inside one)."""

    def __init__(self, during=None):
        self.client = get_client()
        self.removals: list[str] = []
        self.during = during

    def __getattr__(self, name):
        return getattr(self.client, name)

    def remove_users_from_user_group(self, group_id, emails):
        self.removals.append(group_id)
        if self.during is not None:
            self.during(len(self.removals))
        return self.client.remove_users_from_user_group(group_id, emails)


def in_group(group):
    return Membership.objects.filter(group=group, user__email=EMAIL).exists()


def start_removal(actor, groups, **kwargs):
    return person_change_start(
        actor=actor, kind=Job.Kind.PERSON_REMOVE, email=EMAIL, group_ids=[g.id for g in groups], **kwargs
    ).job


def stop_worker(job):
    """As if the worker running `job` died: still "running", its heartbeat long silent."""
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1), started_at=timezone.now()
    )


def test_starting_a_job_sends_nothing_and_queues_its_run(
    groups, ada, django_capture_on_commit_callbacks, enqueued
):
    with django_capture_on_commit_callbacks(execute=True):
        job = start_removal(ada, groups)

    assert job.status == "queued" and job.total == 5 and job.title == f"Remove {EMAIL} from 5 groups"
    assert [i.target_name for i in job.items.all()] == [f"Team {n}" for n in range(1, 6)]
    assert all(in_group(g) for g in groups) and not AuditEntry.objects.exists()
    assert ("run_job", (job.pk,), {}) in enqueued()


def test_a_job_sends_every_item_each_with_its_own_audit_entry(groups, ada):
    job = start_removal(ada, groups)
    client = CountingClient()

    ended = job_run(job.pk, client=client)

    assert ended.status == "finished"
    assert (ended.done_count, ended.succeeded_count, ended.not_done_count) == (5, 5, 0)
    assert not any(in_group(g) for g in groups)
    items = list(job.items.select_related("audit_entry"))
    assert [i.status for i in items] == ["succeeded"] * 5
    assert [i.message for i in items] == [f"Removed from Team {n}." for n in range(1, 6)]
    entries = [i.audit_entry for i in items]
    assert len({e.pk for e in entries}) == 5
    assert all(e.status == "succeeded" and e.actor_username == "ada" for e in entries)
    assert [e.submission_key for e in entries] == [i.submission_key for i in items]
    assert len(client.removals) == 5


def test_the_rule_book_decides_each_item_and_a_failure_stops_only_its_own(groups, db, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    job = start_removal(help_desk(username="hana"), groups[:3])
    inject_fault("remove_users_from_user_group", "429")  # the first removal is rate-limited

    ended = job_run(job.pk)

    statuses = list(job.items.values_list("status", flat=True))
    assert statuses == ["failed", "succeeded", "succeeded"]
    assert (ended.succeeded_count, ended.not_done_count) == (2, 1)
    first = job.items.get(position=1)
    assert first.audit_entry.status == "failed" and "rate" in first.message.lower()


def test_a_job_runs_once_a_second_run_sends_nothing(groups, ada):
    job = start_removal(ada, groups[:2])
    client = CountingClient()
    job_run(job.pk, client=client)

    assert job_run(job.pk, client=client) is None
    assert len(client.removals) == 2


def test_cancelling_a_queued_job_sends_nothing_and_is_audited(groups, ada):
    job = start_removal(ada, groups)

    cancelled = job_cancel(actor=ada, job_id=job.pk)

    assert cancelled.status == "cancelled"
    assert set(job.items.values_list("status", flat=True)) == {"cancelled"}
    assert job_run(job.pk) is None
    assert all(in_group(g) for g in groups)
    entry = AuditEntry.objects.get()
    assert entry.action == "job.cancel" and entry.actor_username == "ada" and entry.details["job"] == job.pk
    with pytest.raises(InvalidInput):
        job_cancel(actor=ada, job_id=job.pk)


def test_cancelling_twice_while_running_is_recorded_once(groups, ada):
    job = start_removal(ada, groups)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)

    job_cancel(actor=ada, job_id=job.pk)
    with pytest.raises(InvalidInput, match="being cancelled already"):
        job_cancel(actor=ada, job_id=job.pk)

    assert AuditEntry.objects.filter(action="job.cancel").count() == 1


def test_cancelling_while_running_lets_the_item_in_flight_finish_and_stops_the_rest(groups, ada):
    job = start_removal(ada, groups)
    client = CountingClient(during=lambda n: n == 2 and job_cancel(actor=ada, job_id=job.pk))

    ended = job_run(job.pk, client=client)

    assert ended.status == "cancelled"
    statuses = list(job.items.values_list("status", flat=True))
    assert statuses == ["succeeded", "succeeded", "cancelled", "cancelled", "cancelled"]
    assert len(client.removals) == 2
    assert [in_group(g) for g in groups] == [False, False, True, True, True]
    assert (ended.done_count, ended.succeeded_count, ended.not_done_count) == (5, 2, 3)
    page = Client()
    page.force_login(ada)
    assert "5 of 5</strong> done: 2 succeeded, 3 not done, 3 of them cancelled before they were sent." in (
        page.get(f"/jobs/{job.pk}/").content.decode()
    )


class WorkerStopped(BaseException):
    """The worker process ending in the middle of a call (as a SIGTERM's SystemExit would)."""


def die_on_second(n):
    if n == 2:
        raise WorkerStopped


def test_a_job_whose_worker_died_is_resumed_and_sends_only_what_was_not_sent(groups, ada, enqueued):
    job = start_removal(ada, groups[:3])
    client = CountingClient(during=die_on_second)
    with pytest.raises(WorkerStopped):
        job_run(job.pk, client=client)
    assert list(job.items.values_list("status", flat=True)) == ["succeeded", "sending", "pending"]
    stop_worker(job)

    assert jobs_resume() == [job.pk]
    assert ("run_job", (job.pk,), {}) in enqueued()
    ended = job_run(job.pk, client=client)

    assert ended.status == "finished" and ended.runs == 2
    # The second was cut off before it reached Segment: read back, found not applied, not resent.
    assert list(job.items.values_list("status", flat=True)) == ["succeeded", "failed", "succeeded"]
    assert client.removals == [groups[0].id, groups[1].id, groups[2].id]
    assert [in_group(g) for g in groups[:3]] == [False, True, False]
    second = job.items.get(position=2).audit_entry
    assert (second.status, second.resolution) == ("unknown", "not_applied")


def test_an_item_whose_outcome_was_lost_is_never_sent_again(groups, ada):
    job = start_removal(ada, groups[:2])
    client = CountingClient()
    job_run(job.pk, client=client)
    stop_worker(job)  # as if the worker died after sending the second, before recording it
    JobItem.objects.filter(job=job, position=2).update(status="pending", audit_entry=None)

    job_run(job.pk, client=client)

    second = job.items.get(position=2)
    assert second.status == "succeeded" and "never sent twice" in second.message
    assert client.removals == [groups[0].id, groups[1].id]
    assert second.audit_entry.status == "succeeded"  # the entry that records the one removal
    outcomes = list(AuditEntry.objects.filter(group_id=groups[1].id).values_list("status", flat=True))
    assert sorted(outcomes) == ["refused", "succeeded"]  # the second attempt: refused as a duplicate


def test_a_running_job_with_a_live_worker_is_not_taken_up(groups, ada):
    job = start_removal(ada, groups[:1])
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, heartbeat_at=timezone.now())

    assert jobs_resume() == []
    assert job_run(job.pk) is None


def stuck_in_sending(job, position):
    """The worker wrote the item's pending entry, sent the removal, then died."""
    item = job.items.select_related("job").get(position=position)
    JobItem.objects.filter(pk=item.pk).update(status="sending")
    return write_pending(
        submission_key=item.submission_key,
        actor=job.created_by,
        action=AuditEntry.Action.MEMBERS_REMOVE,
        summary=f"ada removed 1 member from {item.target_name}",
        group_id=item.target_id,
        group_name=item.target_name,
        details={"emails": [EMAIL]},
    )


@pytest.mark.parametrize(("applied", "status"), [(True, "succeeded"), (False, "failed")])
def test_an_item_left_sending_is_read_back_never_resent(groups, ada, applied, status):
    job = start_removal(ada, groups[:2])
    entry = stuck_in_sending(job, 1)
    if applied:
        Membership.objects.filter(group=groups[0], user__email=EMAIL).delete()
    stop_worker(job)
    client = CountingClient()

    job_run(job.pk, client=client)

    first = job.items.get(position=1)
    assert first.status == status and first.audit_entry_id == entry.pk
    entry.refresh_from_db()
    assert entry.status == "unknown"
    assert entry.resolution == ("applied" if applied else "not_applied")
    assert client.removals == [groups[1].id]  # only the item never sent
    assert in_group(groups[0]) is not applied


def test_an_item_left_sending_before_its_entry_was_written_is_sent_once(groups, ada):
    job = start_removal(ada, groups[:1])
    JobItem.objects.filter(job=job).update(status="sending")
    stop_worker(job)
    client = CountingClient()

    job_run(job.pk, client=client)

    assert job.items.get().status == "succeeded" and client.removals == [groups[0].id]


def test_the_write_budget_lets_no_minute_hold_more_than_its_count():
    now = [1_000_000.0]
    budget = WriteBudget(per_minute=4, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])

    taken = [budget.take() for _ in range(12)]

    minutes = [int(t // 60) for t in taken]
    assert max(minutes.count(m) for m in minutes) <= 4
    for start in taken:
        assert sum(start <= t < start + 60 for t in taken) <= 5  # spread evenly, never a burst
    assert all(later - earlier >= 1 for earlier, later in pairwise(taken))
    assert taken[-1] - taken[0] >= 2 * 60  # twelve changes at four a minute span three minutes


def test_a_job_takes_the_write_budget_once_per_item(groups, ada):
    class Counted(WriteBudget):
        takes = 0

        def take(self, **kwargs):
            Counted.takes += 1
            return super().take(**kwargs)

    job_run(start_removal(ada, groups).pk, budget=Counted(per_minute=100_000))

    assert Counted.takes == 5


def test_a_job_is_seen_by_its_creator_and_administrators_only(groups, ada):
    hana = help_desk(username="hana")
    job = start_removal(hana, groups[:1])

    assert job_for(actor=hana, job_id=job.pk) == job
    assert job_for(actor=ada, job_id=job.pk) == job
    with pytest.raises(JobNotFound):
        job_for(actor=help_desk(username="hugo"), job_id=job.pk)
    with pytest.raises(JobNotFound):
        job_cancel(actor=help_desk(username="hugo"), job_id=job.pk)


def test_bad_input_queues_nothing(groups, ada):
    with pytest.raises(InvalidInput):
        start_removal(ada, [])
    with pytest.raises(InvalidInput):
        person_change_start(
            actor=ada, kind=Job.Kind.PERSON_REMOVE, email="not an address", group_ids=[groups[0].id]
        )

    assert not Job.objects.exists()


def test_the_same_form_submitted_twice_starts_one_job(groups, ada):
    first = start_removal(ada, groups, submission_key="a" * 32)
    again = person_change_start(
        actor=ada, kind=Job.Kind.PERSON_REMOVE, email=EMAIL, group_ids=[groups[0].id], submission_key="a" * 32
    )

    assert again.job == first and not again.is_new and Job.objects.count() == 1


def test_items_sent_side_by_side_each_get_their_outcome_once(transactional_db, settings):
    settings.JOB_CONCURRENCY = 3
    teams = alice_in_groups(8)
    job = start_removal(administrator(username="ada"), teams)
    client = CountingClient()

    ended = job_run(job.pk, client=client)

    assert ended.status == "finished" and (ended.done_count, ended.succeeded_count) == (8, 8)
    assert sorted(client.removals) == sorted(g.id for g in teams)
    assert set(job.items.values_list("status", flat=True)) == {"succeeded"}
    assert AuditEntry.objects.filter(action="members.remove", status="succeeded").count() == 8
