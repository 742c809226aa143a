"""Background tasks, run by `manage.py run_worker` from the queue in the database.

Each task is a thin call into a service and returns a small JSON summary (kept on the task's
result). The periodic ones are enqueued by the worker's scheduler (`services/schedule.py`).
"""

from __future__ import annotations

from typing import Any

from django.tasks import task

from groups_app.services import mirror


def _run_summary(run: Any) -> dict[str, Any]:
    if run is None:
        return {"skipped": "already running"}
    return {
        "sync": run.pk,
        "status": run.status,
        "calls": run.calls,
        "groups": run.group_count,
        "observed": run.observed_count,
    }


@task
def sync_workspace(trigger: str = "schedule") -> dict[str, Any]:
    """Read the whole workspace into the mirror."""
    return _run_summary(mirror.sync_workspace(trigger=trigger))


@task
def refresh_group(group_id: str, trigger: str = "change", verify_emails: list[str] | None = None) -> dict:
    """Re-read one group into the mirror after a change; record which added emails became invites."""
    run = mirror.refresh_group(group_id, trigger=trigger)
    if verify_emails and run is not None and run.status == run.Status.SUCCEEDED:
        from groups_app.services.membership import record_verified_invites

        record_verified_invites(group_id, verify_emails)
    return _run_summary(run)


@task
def reconcile_changes() -> dict[str, Any]:
    """Read back changes whose outcome Segment did not confirm."""
    from groups_app.services.reconcile import reconcile_changes as reconcile

    run = reconcile()
    return {"abandoned": run.abandoned, "resolved": run.resolved, "still_unknown": run.still_unknown}


@task
def expire_access() -> dict[str, Any]:
    """End provisioned access requests past their end date."""
    from groups_app.services.access_requests import requests_expire

    result = requests_expire()
    return {"expired": len(result.expired), "failed": len(result.failed)}


@task
def remind_reviews() -> dict[str, Any]:
    """Mail the reviewers of reviews due soon."""
    from groups_app.services.reviews import reviews_remind

    return {"reminded": len(list(reviews_remind()))}


@task
def prune_history() -> dict[str, Any]:
    """Forget finished tasks and sync records older than KEEP_TASK_HISTORY_DAYS (failures are kept
    as long again, to be looked into). Audit entries are never pruned."""
    from datetime import timedelta
    from io import StringIO

    from django.conf import settings
    from django.core.management import call_command
    from django.tasks import task_backends
    from django.utils import timezone
    from django_tasks_db.backend import DatabaseBackend

    from groups_app.models import SyncRun

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
    return {"sync_runs_deleted": deleted}
