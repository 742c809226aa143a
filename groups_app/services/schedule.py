"""The periodic jobs, and who enqueues them: every worker runs this scheduler, and one
conditional update per due job decides which worker enqueues it, so a job is enqueued once
per period however many workers run, on however many machines. Nobody edits a crontab."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from groups_app.models import PeriodicJob, SyncRun, WorkerHeartbeat
from groups_app.services import queue

logger = logging.getLogger("groups_app.schedule")

# A worker writes its heartbeat this often; readiness wants one within WORKER_SILENCE_SECONDS.
HEARTBEAT_EVERY = 15.0
WORKER_SILENCE_SECONDS = 120


@dataclass(frozen=True)
class Job:
    name: str  # the registered background task it enqueues
    every: Callable[[], int]  # seconds, read from the settings at each tick
    # When the work last happened by other means (a sync run by hand or asked for): the job is
    # then next due a period after that, not now.
    last_done: Callable[[], datetime | None] = lambda: None


def _last_sync() -> datetime | None:
    """When the last successful full sync or quick pass read the listing."""
    return (
        SyncRun.objects.filter(
            kind__in=[SyncRun.Kind.FULL, SyncRun.Kind.QUICK], status=SyncRun.Status.SUCCEEDED
        )
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )


def _has_webhooks() -> bool:
    return bool(settings.WEBHOOK_URLS or settings.SLACK_WEBHOOK_URL)


def jobs() -> tuple[Job, ...]:
    return (
        # The quick pass also reads, at each run, its share of the groups read longest ago:
        # no separate full sync is scheduled, so none ever comes as one burst.
        Job("sync_changed", lambda: settings.MIRROR_QUICK_SYNC_EVERY, last_done=_last_sync),
        Job("reconcile_changes", lambda: settings.RECONCILE_EVERY),
        Job("expire_access", lambda: settings.EXPIRE_ACCESS_EVERY),
        Job("notify_expiring", lambda: settings.NOTIFY_EXPIRING_EVERY),
        Job("remind_reviews", lambda: settings.REMIND_REVIEWS_EVERY),
        Job("prune_history", lambda: 24 * 3600),
        # Jobs a stopped worker left are taken up again.
        Job("resume_jobs", lambda: settings.JOB_RESUME_EVERY),
        *([Job("deliver_due_webhooks", lambda: settings.WEBHOOK_RETRY_EVERY)] if _has_webhooks() else []),
    )


def enqueue_due_jobs() -> list[str]:
    """Enqueue every job whose time has come and that no other worker claimed; return their names.

    A job never run before is due at once. Claiming moves its next time forward first, so a
    worker that dies between claim and enqueue delays the job by one period at most.
    """
    enqueued = []
    for job in jobs():
        now = timezone.now()
        every = timedelta(seconds=max(1, job.every()))
        try:
            with transaction.atomic():
                PeriodicJob.objects.get_or_create(name=job.name, defaults={"next_run_at": now})
        except IntegrityError:  # another worker created it at the same moment
            pass
        # A shortened period takes effect now, not after the longer one ends.
        PeriodicJob.objects.filter(name=job.name, next_run_at__gt=now + every).update(next_run_at=now + every)
        done_at = job.last_done()
        if done_at is not None and done_at + every > now:
            # Done recently by other means: due again a period after that.
            PeriodicJob.objects.filter(name=job.name, next_run_at__lte=now).update(
                next_run_at=done_at + every
            )
            continue
        claimed = PeriodicJob.objects.filter(name=job.name, next_run_at__lte=now).update(
            next_run_at=now + every, last_enqueued_at=now
        )
        if claimed:
            try:
                queue.enqueue(job.name)
            except Exception:
                logger.exception("Could not enqueue the periodic job %s", job.name)
                continue
            enqueued.append(job.name)
    return enqueued


def worker_heartbeat(worker: str, *, started_at: datetime) -> None:
    """A worker process is alive (written every HEARTBEAT_EVERY seconds while it runs)."""
    WorkerHeartbeat.objects.update_or_create(
        worker=worker[:200], defaults={"seen_at": timezone.now(), "started_at": started_at}
    )


def last_worker_heartbeat() -> datetime | None:
    """When the last sign of life of any worker was written."""
    return WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()


def workers_alive() -> int:
    """Workers that gave a sign of life within WORKER_SILENCE_SECONDS."""
    since = timezone.now() - timedelta(seconds=WORKER_SILENCE_SECONDS)
    return WorkerHeartbeat.objects.filter(seen_at__gte=since).count()


def forget_silent_workers(*, older_than: timedelta) -> int:
    """Forget the heartbeats of workers silent for long (stopped, or their machine is gone)."""
    deleted, _ = WorkerHeartbeat.objects.filter(seen_at__lt=timezone.now() - older_than).delete()
    return deleted
