"""The background worker: a real `manage.py run_worker` process runs queued tasks from the
database, and its scheduler enqueues each periodic job once per period."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from groups_app import tasks
from groups_app.models import AuditEntry, Job, MirrorGroup, PeriodicJob, SyncRun, WorkerHeartbeat
from groups_app.services.jobs import person_change_start
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.schedule import enqueue_due_jobs
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.factories import administrator

ROOT = Path(__file__).resolve().parents[1]
DATABASE_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


def database_url() -> str:
    """The test database, as the worker process must be told of it."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


def run_worker(*arguments: str, **settings: str) -> subprocess.CompletedProcess:
    """One worker process on the production settings (and `settings`, as environment variables):
    runs what is queued, then exits (--batch)."""
    env = {
        **settings,
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "worker-test-key-not-a-secret",
        "DEBUG": "false",
        "SEGMENT_MODE": "sandbox",
        "SANDBOX_ALLOW_WITHOUT_DEBUG": "true",
        "SANDBOX_API_TOKEN": "sandbox-test-token",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.run(  # noqa: S603 - our own command, fixed arguments
        [
            sys.executable,
            "manage.py",
            "run_worker",
            "--batch",
            "--no-reload",
            "--no-startup-delay",
            *arguments,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def database_queue(settings, transactional_db):
    """Tasks go to the queue in the database, where a worker process sees them."""
    settings.TASKS = DATABASE_QUEUE


@pytest.fixture
def team(transactional_db):
    group = UserGroup.objects.create(name="Data Engineering")
    alice = WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    Membership.objects.create(group=group, user=alice)
    return group


def test_a_worker_process_runs_a_queued_sync(database_queue, team):
    queued = tasks.sync_workspace.enqueue(trigger="Refresh by vera")

    finished = run_worker("--no-schedule")

    assert finished.returncode == 0, finished.stderr
    result = DBTaskResult.objects.get(id=queued.id)
    assert result.status == "SUCCESSFUL", result.traceback
    assert result.return_value["status"] == "succeeded"
    run = SyncRun.objects.get(kind=SyncRun.Kind.FULL)
    assert run.trigger == "Refresh by vera" and run.status == SyncRun.Status.SUCCEEDED
    assert MirrorGroup.objects.get(group_id=team.id).member_count == 1
    assert WorkerHeartbeat.objects.count() == 1  # readiness sees a worker alive


def test_a_worker_process_runs_a_job_items_side_by_side(database_queue, team):
    others = [UserGroup.objects.create(name=f"Team {n}") for n in range(1, 5)]
    alice = WorkspaceUser.objects.get(email="alice@example.com")
    for group in others:
        Membership.objects.create(group=group, user=alice)
    sync_workspace(trigger="test")
    ada = administrator(username="ada")
    with transaction.atomic():  # committed, so the worker process sees it
        job = person_change_start(
            actor=ada,
            kind=Job.Kind.PERSON_REMOVE,
            email="alice@example.com",
            group_ids=[team.id, *(g.id for g in others)],
        ).job

    finished = run_worker("--no-schedule", JOB_CONCURRENCY="3", JOB_WRITES_PER_MINUTE="6000")

    assert finished.returncode == 0, finished.stderr
    result = DBTaskResult.objects.get(task_path="groups_app.tasks.run_job")
    assert result.status == "SUCCESSFUL", result.traceback
    job.refresh_from_db()
    assert (job.status, job.done_count, job.succeeded_count) == ("finished", 5, 5)
    assert not Membership.objects.filter(user=alice).exists()
    assert AuditEntry.objects.filter(action="members.remove", status="succeeded").count() == 5


def test_the_worker_schedules_the_periodic_jobs_and_runs_them(database_queue, team):
    finished = run_worker()

    assert finished.returncode == 0, finished.stderr
    ran = {r.task_path.rsplit(".", 1)[1]: r.status for r in DBTaskResult.objects.all()}
    assert ran == {
        "sync_changed": "SUCCESSFUL",
        "reconcile_changes": "SUCCESSFUL",
        "expire_access": "SUCCESSFUL",
        "notify_expiring": "SUCCESSFUL",
        "remind_reviews": "SUCCESSFUL",
        "prune_history": "SUCCESSFUL",
        "resume_jobs": "SUCCESSFUL",
    }
    assert MirrorGroup.objects.filter(group_id=team.id).exists()
    assert set(PeriodicJob.objects.values_list("name", flat=True)) == set(ran)
    # A second worker a moment later finds nothing due: each job runs once per period.
    assert run_worker().returncode == 0
    assert DBTaskResult.objects.count() == 7


def test_each_due_job_is_enqueued_once_however_many_workers_look(db, settings, enqueued):
    settings.MIRROR_QUICK_SYNC_EVERY = 900

    first = enqueue_due_jobs()
    second = enqueue_due_jobs()  # another worker, right after

    assert first == [
        "sync_changed",
        "reconcile_changes",
        "expire_access",
        "notify_expiring",
        "remind_reviews",
        "prune_history",
        "resume_jobs",
    ]
    assert second == []
    assert len(enqueued()) == 7
    PeriodicJob.objects.filter(name="sync_changed").update(next_run_at=timezone.now() - timedelta(seconds=1))
    assert enqueue_due_jobs() == ["sync_changed"]
    job = PeriodicJob.objects.get(name="sync_changed")
    assert timedelta(seconds=899) < job.next_run_at - timezone.now() <= timedelta(seconds=900)


def test_a_shortened_period_takes_effect_at_once(db, settings):
    enqueue_due_jobs()
    settings.RECONCILE_EVERY = 30

    enqueue_due_jobs()

    job = PeriodicJob.objects.get(name="reconcile_changes")
    assert job.next_run_at - timezone.now() <= timedelta(seconds=30)


def test_pruning_forgets_old_sync_records_but_never_audit_entries(db, settings):
    from groups_app.models import AuditEntry

    settings.TASKS = DATABASE_QUEUE
    settings.KEEP_TASK_HISTORY_DAYS = 30
    long_ago = timezone.now() - timedelta(days=31)
    old = SyncRun.objects.create(
        kind="group", group_id="g1", status="succeeded", started_at=long_ago, heartbeat_at=long_ago
    )
    recent = SyncRun.objects.create(
        kind="group",
        group_id="g2",
        status="succeeded",
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    AuditEntry.objects.create(actor_username="ada", action="members.add", summary="old", status="succeeded")

    assert tasks.prune_history.call() == {"sync_runs_deleted": 1}

    assert list(SyncRun.objects.all()) == [recent] and not SyncRun.objects.filter(pk=old.pk).exists()
    assert AuditEntry.objects.count() == 1


def test_a_recent_sync_postpones_the_scheduled_one(db, settings, enqueued):
    settings.MIRROR_QUICK_SYNC_EVERY = 900
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    SyncRun.objects.create(
        kind="full", status="succeeded", started_at=ten_minutes_ago, heartbeat_at=ten_minutes_ago
    )

    assert "sync_changed" not in enqueue_due_jobs()

    job = PeriodicJob.objects.get(name="sync_changed")
    assert abs((job.next_run_at - (ten_minutes_ago + timedelta(seconds=900))).total_seconds()) < 1
    assert ("sync_changed", (), {}) not in enqueued()
