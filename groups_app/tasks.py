"""Background tasks, run by `manage.py run_worker` from the queue in the database.

Each task is a thin call into a service and returns a small JSON summary (kept on the task's
result). Services enqueue them by name through `services/queue.py`, where each is registered
when the app loads; the periodic ones are enqueued by the worker's scheduler
(`services/schedule.py`).
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.tasks import task, task_backends
from django.utils import timezone
from django_tasks_db.backend import DatabaseBackend

from groups_app.models import SyncRun
from groups_app.services import jobs, notifications, queue, reconcile, reviews, schedule, webhooks
from groups_app.services.approvals import access_requests, expiry
from groups_app.services.mirror import sync, write_through
from groups_app.services.reviews import reviews_remind


def _run_summary(run: SyncRun | None) -> dict[str, Any]:
    if run is None:
        return {"skipped": "already running"}
    return {
        "sync": run.pk,
        "status": run.status,
        "calls": run.calls,
        "groups": run.group_count,
        "groups_read": run.groups_read,
        "observed": run.observed_count,
    }


@queue.register
@task
def sync_workspace(trigger: str = "schedule") -> dict[str, Any]:
    """Read the whole workspace into the mirror; close the requests of groups deleted outside."""
    run = sync.sync_workspace(trigger=trigger)
    summary = _run_summary(run)
    if run is not None and run.status == SyncRun.Status.SUCCEEDED:
        summary["requests_closed"] = len(access_requests.access_requests_close_for_deleted_groups())
    return summary


@queue.register
@task
def sync_changed(trigger: str = "schedule") -> dict[str, Any]:
    """A quick pass: the group listing, then only the groups that changed (and a share of the
    groups read longest ago); close the requests of groups deleted outside."""
    run = sync.sync_changed(trigger=trigger)
    summary = _run_summary(run)
    if run is not None and run.status == SyncRun.Status.SUCCEEDED:
        summary["requests_closed"] = len(access_requests.access_requests_close_for_deleted_groups())
    return summary


@queue.register
@task
def refresh_group(group_id: str, trigger: str = "change", verify_emails: list[str] | None = None) -> dict:
    """Re-read one group into the mirror after a change; record which added emails became invites."""
    run = sync.refresh_group(group_id, trigger=trigger)
    if verify_emails and run is not None and run.status == SyncRun.Status.SUCCEEDED:
        write_through.record_verified_invites(group_id, verify_emails)
    return _run_summary(run)


@queue.register
@task
def reconcile_changes() -> dict[str, Any]:
    """Read back changes whose outcome Segment did not confirm."""
    run = reconcile.reconcile_changes()
    return {"abandoned": run.abandoned, "resolved": run.resolved, "still_unknown": run.still_unknown}


@queue.register
@task
def expire_access() -> dict[str, Any]:
    """End provisioned access requests past their end date."""
    result = access_requests.access_requests_expire()
    return {"expired": len(result.expired), "failed": len(result.failed)}


@queue.register
@task
def notify_expiring() -> dict[str, Any]:
    """Mail the members and owners of time-bound access ending soon."""
    return {"notified": len(expiry.expiry_notices_send())}


@queue.register
@task
def open_campaign_reviews(campaign_id: int) -> dict[str, Any]:
    """Open the reviews of a campaign's groups."""
    campaign = reviews.campaign_open_reviews(campaign_id=campaign_id)
    return {"reviews": campaign.reviews.count(), "problems": len(campaign.problems)}


@queue.register
@task
def remind_reviews() -> dict[str, Any]:
    """Mail the reviewers of reviews due soon."""
    return {"reminded": len(list(reviews_remind()))}


@queue.register
@task
def send_notification(kind: str, ids: list[int]) -> dict[str, Any]:
    """Mail one event (requests filed, a request decided, a grant proposed) after its change was
    written, so that no request waits for the mail server."""
    return {"sent": notifications.send(kind, ids)}


@queue.register
@task
def prune_history() -> dict[str, Any]:
    """Forget finished tasks, sync records and jobs' files (exports) older than
    KEEP_TASK_HISTORY_DAYS (failed tasks are kept as long again, to be looked into). Audit
    entries are never pruned."""
    days = settings.KEEP_TASK_HISTORY_DAYS
    if isinstance(task_backends["default"], DatabaseBackend):
        call_command(
            "prune_db_task_results",
            "--min-age-days",
            str(days),
            "--failed-min-age-days",
            str(days * 2),
            stdout=StringIO(),
        )
    old = SyncRun.objects.filter(started_at__lt=timezone.now() - timedelta(days=days)).exclude(
        status=SyncRun.Status.RUNNING
    )
    deleted, _ = old.delete()
    schedule.forget_silent_workers(older_than=timedelta(days=1))
    jobs.job_outputs_prune(older_than=timedelta(days=days))
    return {"sync_runs_deleted": deleted}


@queue.register
@task
def deliver_webhook(delivery_id: int) -> dict[str, Any]:
    """POST one webhook event (or Slack message) to its receiver; a failure is retried later."""
    delivery = webhooks.webhook_deliver(delivery_id)
    if delivery is None:
        return {"skipped": "not due, or taken by another worker"}
    return {"status": delivery.status, "attempts": delivery.attempts}


@queue.register
@task
def deliver_due_webhooks() -> dict[str, Any]:
    """Send the webhook deliveries whose retry time has come."""
    return {"attempted": len(webhooks.webhook_deliveries_due())}


@queue.register
@task
def run_job(job_id: int) -> dict[str, Any]:
    """Send a job's items (a change to one person across many groups), recording each outcome."""
    job = jobs.job_run(job_id)
    if job is None:
        return {"skipped": "ended, or running in another worker"}
    return {"job": job.pk, "status": job.status, "done": job.done_count, "total": job.total}


@queue.register
@task
def resume_jobs() -> dict[str, Any]:
    """Take up again the jobs whose worker stopped (nothing is sent twice)."""
    return {"resumed": jobs.jobs_resume()}
