"""Jobs: long work run in the worker item by item, with a page showing its progress.

A job is a list of items, each one change through the change pipeline with its own audit entry,
sent under a submission key derived from (job, item): the pipeline never sends one key twice.
The request that starts a job only validates and writes it; the worker (`run_job`) sends its
items a few side by side (`JOB_CONCURRENCY`) within a write budget that every job shares through
the cache (`JOB_WRITES_PER_MINUTE`), each call within the per-call deadline.

Cancelling stops the items not yet started; those in flight finish. A job whose worker died
(no heartbeat for `JOB_STALE_SECONDS`) is taken up again by `jobs_resume`: its waiting items are
sent, and an item left "sending" is never resent blindly — the entry its key wrote is read
back (reconciled) and its outcome recorded; only an item that wrote no entry was never sent.
"""

from __future__ import annotations

import gzip
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from groups_app.models import AuditEntry, Job, JobItem, JobOutput, MirrorGroup, Review, ReviewItem
from groups_app.segment import SegmentClient, SegmentError, deadline
from groups_app.services import queue
from groups_app.services.audit import actor_name, record_completed
from groups_app.services.audit_log import audit_csv_rows, audit_entries
from groups_app.services.changes import SecondPersonNeeded
from groups_app.services.errors import (
    ChangeOutcomeUnknown,
    DuplicateSubmission,
    InvalidInput,
    ServiceError,
    outcome_message,
)
from groups_app.services.membership import group_members_remove, group_members_replace
from groups_app.services.people import (
    checked_person_email,
    checked_selection,
    person_group_add,
    person_group_remove,
    person_keys,
)
from groups_app.services.reconcile import mark_abandoned, reconcile_entry
from groups_app.services.segment_client import get_client
from groups_app.services.text import plural

logger = logging.getLogger("groups_app.jobs")

Status = JobItem.Status
HEARTBEAT_EVERY = 10.0
RUN_TASK = "run_job"
# A Replace all naming more addresses than this is applied by the worker (reading a large group
# whole and sending the list may take longer than a request may wait).
REPLACE_IN_WORKER_OVER = 200
# An export of more rows than this is written by the worker and downloaded from the job's page.
EXPORT_IN_WORKER_OVER = 10_000
# Kinds whose items send a change to Segment (and so take the write budget).
WRITING_KINDS = (
    Job.Kind.PERSON_REMOVE,
    Job.Kind.PERSON_ADD,
    Job.Kind.REVIEW_REMOVE,
    Job.Kind.MEMBERS_REPLACE,
)


class JobNotFound(ServiceError):
    """No such job, or one this account may not see."""


# --- the write budget ------------------------------------------------------------------------


class WriteBudget:
    """Changes per minute that every job shares, counted in the cache: each change takes a slot
    of its own, 60 / `JOB_WRITES_PER_MINUTE` seconds long, so changes are spread evenly — each
    clock minute holds at most the budget (any 60 seconds one more), never a burst at a
    minute's turn — and changes made on the pages still find room in Segment's 60."""

    def __init__(
        self,
        per_minute: int | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_minute = max(1, per_minute or settings.JOB_WRITES_PER_MINUTE)
        self.slot_seconds = 60.0 / self.per_minute
        self._sleep = sleep
        self._clock = clock

    def take(self, *, on_wait: Callable[[], None] | None = None) -> float:
        """Wait for a free slot and take it; returns when (by the clock) it was taken."""
        while True:
            now = self._clock()
            slot = int(now / self.slot_seconds)
            if cache.add(f"jobs:write-slot:{self.per_minute}:{slot}", 1, timeout=int(self.slot_seconds) + 60):
                return now
            self._sleep(max(0.01, (slot + 1) * self.slot_seconds - now))
            if on_wait is not None:
                on_wait()


# --- starting, seeing and cancelling jobs ----------------------------------------------------


@dataclass(frozen=True)
class Started:
    job: Job
    is_new: bool  # False: this form had started it already


def person_change_start(
    *, actor: Any, kind: str, email: str, group_ids: list[str], submission_key: str | None = None
) -> Started:
    """Queue a change to one person across groups as a job; nothing is sent in the request.

    Raises:
        InvalidInput: not an email, or no usable selection (nothing is queued).
    """
    email = checked_person_email(email)
    selection = checked_selection(group_ids)
    count = plural(len(selection), "group")
    title = f"Remove {email} from {count}" if kind == Job.Kind.PERSON_REMOVE else f"Add {email} to {count}"
    return _job_create(
        actor=actor,
        kind=kind,
        title=title,
        parameters={"email": email},
        targets=[(group_id, name, {}) for group_id, name in selection.items()],
        submission_key=submission_key,
    )


def members_replace_start(
    *,
    actor: Any,
    group_id: str,
    emails: list[str],
    fingerprint: str,
    submission_key: str | None = None,
) -> Started:
    """Queue a Replace all as a job of one item: the worker reads the group whole, refuses the
    change if it differs from the preview (`fingerprint`), and sends the list."""
    group_name = (
        MirrorGroup.objects.filter(group_id=group_id).values_list("name", flat=True).first() or group_id
    )
    return _job_create(
        actor=actor,
        kind=Job.Kind.MEMBERS_REPLACE,
        title=f"Replace the members of {group_name} with {plural(len(emails), 'address', 'addresses')}",
        parameters={},
        targets=[(group_id, group_name, {"emails": emails, "fingerprint": fingerprint})],
        submission_key=submission_key,
    )


def audit_export_start(*, actor: Any, filters: dict[str, Any], filename: str) -> Job:
    """Queue an export of the audit entries matching `filters` (dates as ISO text) as a job."""
    return _job_create(
        actor=actor,
        kind=Job.Kind.AUDIT_EXPORT,
        title="Export the audit log" + (" (filtered)" if any(filters.values()) else ""),
        parameters={"filters": filters, "filename": filename},
        targets=[("audit", filename, {})],
        submission_key=None,
    ).job


def job_download(*, actor: Any, job_id: int) -> tuple[Iterator[str], str]:
    """The file a finished export job wrote, as text chunks, and its name.

    Raises:
        JobNotFound: not a job the actor may see, or one with nothing to download.
    """
    job = job_for(actor=actor, job_id=job_id)
    if job.kind != Job.Kind.AUDIT_EXPORT or job.status != Job.Status.FINISHED or not job.outputs.exists():
        raise JobNotFound("This job has no file to download.")
    chunks = (
        gzip.decompress(bytes(data)).decode()
        for data in job.outputs.order_by("position").values_list("data", flat=True).iterator(chunk_size=20)
    )
    return chunks, job.parameters.get("filename") or f"job-{job.pk}.csv"


def job_outputs_prune(*, older_than: timedelta) -> int:
    """Forget the files of jobs that ended longer ago than `older_than` (their pages stay)."""
    deleted, _ = JobOutput.objects.filter(job__finished_at__lt=timezone.now() - older_than).delete()
    return deleted


def review_removals_start(*, actor: Any, review: Review, batches: list[list[str]]) -> Job:
    """Queue the removals of a completed review as a job: one item (one change) per batch."""
    targets = []
    done = 0
    for batch in batches:
        label = f"{review.group_name}: entries {done + 1}–{done + len(batch)}"
        targets.append((review.group_id, label, {"emails": batch}))
        done += len(batch)
    title = f"Remove {plural(done, 'entry', 'entries')} from {review.group_name} (review #{review.pk})"
    return _job_create(
        actor=actor,
        kind=Job.Kind.REVIEW_REMOVE,
        title=title,
        parameters={"review": review.pk},
        targets=targets,
        submission_key=None,
    ).job


def _job_create(
    *,
    actor: Any,
    kind: str,
    title: str,
    parameters: dict[str, Any],
    targets: list[tuple[str, str, dict[str, Any]]],
    submission_key: str | None,
) -> Started:
    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=kind,
                title=title[:300],
                key=secrets.token_hex(8),
                submission_key=submission_key or None,
                created_by=actor,
                created_by_username=actor_name(actor)[:150],
                parameters=parameters,
                total=len(targets),
            )
            JobItem.objects.bulk_create(
                JobItem(job=job, position=n, target_id=target_id, target_name=name[:300], payload=payload)
                for n, (target_id, name, payload) in enumerate(targets, start=1)
            )
    except IntegrityError:
        earlier = Job.objects.filter(submission_key=submission_key, created_by=actor).first()
        if earlier is None:
            raise InvalidInput("This form was already submitted.") from None
        return Started(earlier, is_new=False)
    queue.enqueue_after_commit(RUN_TASK, job.pk)
    return Started(job, is_new=True)


def job_for(*, actor: Any, job_id: int) -> Job:
    """A job its creator or an Administrator may see.

    Raises:
        JobNotFound: no such job, or not theirs to see.
    """
    job = Job.objects.visible_to(actor).filter(pk=job_id).first() if actor is not None else None
    if job is None:
        raise JobNotFound("No such job.")
    return job


def job_list(*, actor: Any, limit: int = 50) -> list[Job]:
    """The jobs `actor` started (every job, for Administrators), newest first."""
    return list(Job.objects.visible_to(actor).select_related("created_by")[:limit])


def job_items(job: Job) -> list[JobItem]:
    return list(job.items.select_related("audit_entry").order_by("position"))


def job_person_key(job: Job) -> str:
    """The People key of the person a job changes ("" for other jobs), to link their page."""
    email = job.parameters.get("email") if job.kind in (Job.Kind.PERSON_REMOVE, Job.Kind.PERSON_ADD) else None
    return person_keys([email]).get(email, "") if email else ""


def job_cancel(*, actor: Any, job_id: int) -> Job:
    """Stop a job: items not started are cancelled, those in flight finish (audited).

    Raises:
        JobNotFound: not a job the actor may see (and so cancel).
        InvalidInput: it has ended already, or is being cancelled already (a second click, a
            resent form, someone else's Cancel): only the first is recorded.
    """
    job = job_for(actor=actor, job_id=job_id)
    if not job.is_active:
        raise InvalidInput("This job has ended already; there is nothing to cancel.")
    now = timezone.now()
    if not Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=True).update(cancel_requested_at=now):
        raise InvalidInput("This job is being cancelled already: the changes on their way finish.")
    # Not taken up by a worker yet: nothing is in flight, so it ends now.
    if Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.CANCELLED, finished_at=now
    ):
        _cancel_waiting(job)
        _recount(job)
    record_completed(
        actor=actor,
        action=AuditEntry.Action.JOB_CANCEL,
        summary=f"{actor_name(actor)} cancelled job #{job.pk}: {job.title}",
        details={"job": job.pk, "kind": job.kind, "started_by": job.created_by_username},
    )
    return Job.objects.get(pk=job.pk)


# --- running ---------------------------------------------------------------------------------


def job_run(
    job_id: int, *, client: SegmentClient | None = None, budget: WriteBudget | None = None
) -> Job | None:
    """Run a job's waiting items, settling first those a dead worker left in flight. Returns
    None when the job is not this worker's to run (ended, or running elsewhere and alive)."""
    if not _claim(job_id):
        return None
    job = Job.objects.get(pk=job_id)
    client = client or get_client()
    budget = budget or WriteBudget()
    try:
        _settle_in_flight(job, client)
        _send_waiting(job, client, budget)
    except Exception as exc:
        logger.exception("Job #%s stopped", job.pk)
        _recount(job)
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        return Job.objects.get(pk=job.pk)
    if _cancel_requested(job):
        _cancel_waiting(job)
    _recount(job)
    ended = Job.Status.CANCELLED if _cancel_requested(job) else Job.Status.FINISHED
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(status=ended, finished_at=timezone.now())
    return Job.objects.get(pk=job.pk)


def jobs_resume() -> list[int]:
    """Enqueue again the jobs whose worker stopped beating, and queued ones nobody took up."""
    before = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)
    found = list(Job.objects.stalled(before=before).values_list("pk", flat=True))
    for job_id in found:
        logger.info("Taking up job #%s again", job_id)
        queue.enqueue(RUN_TASK, job_id)
    return found


def _claim(job_id: int) -> bool:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_SECONDS)
    return bool(
        Job.objects.filter(pk=job_id)
        .filter(Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, heartbeat_at__lt=stale))
        .update(
            status=Job.Status.RUNNING,
            heartbeat_at=now,
            started_at=Coalesce(F("started_at"), now),
            runs=F("runs") + 1,
        )
    )


def _beat(job: Job) -> None:
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())


def _cancel_requested(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=False).exists()


def _cancel_waiting(job: Job) -> None:
    waiting = JobItem.objects.filter(job=job, status=Status.PENDING)
    message = "Cancelled before it was sent."
    if job.kind == Job.Kind.REVIEW_REMOVE:
        emails = [
            email for payload in waiting.values_list("payload", flat=True) for email in payload["emails"]
        ]
        ReviewItem.objects.filter(review_id=job.parameters["review"], email__in=emails).update(
            removal=ReviewItem.Removal.FAILED,
            removal_error=f"{message} Retry the failed removals to send it.",
        )
    waiting.update(status=Status.CANCELLED, message=message, finished_at=timezone.now())


def _recount(job: Job) -> None:
    """Count the job's items afresh (one query), after items were settled in bulk."""
    counts = JobItem.objects.filter(job=job).aggregate(
        done=Count("pk", filter=Q(status__in=JobItem.DONE)),
        succeeded=Count("pk", filter=Q(status=Status.SUCCEEDED)),
    )
    Job.objects.filter(pk=job.pk).update(
        done_count=counts["done"],
        succeeded_count=counts["succeeded"],
        not_done_count=counts["done"] - counts["succeeded"],
    )


def _send_waiting(job: Job, client: SegmentClient, budget: WriteBudget) -> None:
    waiting = iter(
        JobItem.objects.filter(job=job, status=Status.PENDING)
        .order_by("position")
        .values_list("pk", flat=True)
    )
    concurrency = max(1, settings.JOB_CONCURRENCY)
    if concurrency == 1:
        for item_id in waiting:
            if _cancel_requested(job):
                return
            _beat(job)
            _send_item(job, item_id, client, budget, on_wait=lambda: _beat(job))
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"job-{job.pk}") as pool:
        running: set[Future] = set()
        while True:
            stopping = _cancel_requested(job)
            while not stopping and len(running) < concurrency:
                item_id = next(waiting, None)
                if item_id is None:
                    break
                running.add(pool.submit(_send_item_in_thread, job, item_id, client, budget))
            if not running:
                return
            done, running = wait(running, timeout=HEARTBEAT_EVERY, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
            _beat(job)


def _send_item_in_thread(job: Job, item_id: int, client: SegmentClient, budget: WriteBudget) -> None:
    close_old_connections()
    try:
        _send_item(job, item_id, client, budget)
    finally:
        connection.close()  # each thread's own connection


def _send_item(
    job: Job,
    item_id: int,
    client: SegmentClient,
    budget: WriteBudget,
    on_wait: Callable[[], None] | None = None,
) -> None:
    if job.kind in WRITING_KINDS:
        budget.take(on_wait=on_wait)
    if _cancel_requested(job):
        return
    if not JobItem.objects.filter(pk=item_id, status=Status.PENDING).update(
        status=Status.SENDING, started_at=timezone.now()
    ):
        return  # cancelled meanwhile, or another runner took it
    item = JobItem.objects.select_related("job", "job__created_by").get(pk=item_id)
    try:
        with deadline(settings.SEGMENT_REQUEST_DEADLINE):
            status, message, entry = _change(item, client)
    except SecondPersonNeeded as exc:
        status, message, entry = Status.FILED, exc.message, exc.entry
    except ChangeOutcomeUnknown as exc:
        status, message, entry = _status_of(exc.entry), exc.message, exc.entry
    except DuplicateSubmission as exc:
        entry = exc.entry
        status = _status_of(entry) if entry is not None else Status.UNKNOWN
        message = "Sent already (it is never sent twice): " + (_message_of(entry) if entry else exc.message)
    except ServiceError as exc:
        status, message, entry = Status.REFUSED, exc.message, getattr(exc, "audit_entry", None)
    except SegmentError as exc:
        status, message, entry = Status.FAILED, exc.message, getattr(exc, "audit_entry", None)
    except Exception as exc:
        logger.exception("Job #%s item %s crashed", job.pk, item.position)
        entry = getattr(exc, "audit_entry", None)
        status = _status_of(entry) if entry is not None else Status.FAILED
        message = f"Group Admin could not make this change ({type(exc).__name__})."
    _record(item, status, message, entry)


def _change(item: JobItem, client: SegmentClient) -> tuple[str, str, AuditEntry | None]:
    """Make one item's change through the pipeline; its status, message and audit entry."""
    job = item.job
    actor = job.created_by
    if actor is None:
        return Status.REFUSED, "The account that started this job no longer exists; nothing was sent.", None
    common = {
        "actor": actor,
        "email": job.parameters.get("email", ""),
        "group_id": item.target_id,
        "group_name": item.target_name,
        "submission_key": item.submission_key,
        "client": client,
    }
    if job.kind == Job.Kind.PERSON_REMOVE:
        message, entry = person_group_remove(**common)
        return Status.SUCCEEDED, message, entry
    if job.kind == Job.Kind.PERSON_ADD:
        message, entry, is_filed = person_group_add(**common)
        return (Status.FILED if is_filed else Status.SUCCEEDED), message, entry
    if job.kind == Job.Kind.AUDIT_EXPORT:
        return _export_audit(job)
    if job.kind == Job.Kind.MEMBERS_REPLACE:
        changed = group_members_replace(
            actor=actor,
            group_id=item.target_id,
            emails=item.payload["emails"],
            fingerprint=item.payload["fingerprint"],
            submission_key=item.submission_key,
            client=client,
        )
        result = changed.result
        message = (
            f"Members replaced: {len(result.to_add)} added, {len(result.to_remove)} removed, "
            f"{len(result.unchanged)} unchanged."
        )
        return Status.SUCCEEDED, message, changed.entry
    if job.kind == Job.Kind.REVIEW_REMOVE:
        emails = item.payload["emails"]
        changed = group_members_remove(
            actor=actor,
            group_id=item.target_id,
            emails=emails,
            submission_key=item.submission_key,
            review=Review.objects.get(pk=job.parameters["review"]),
            client=client,
        )
        return Status.SUCCEEDED, f"Removed {plural(len(emails), 'entry', 'entries')}.", changed.entry
    raise ValueError(f"No runner for jobs of kind {job.kind!r}.")


def _export_audit(job: Job) -> tuple[str, str, None]:
    """Write the matching entries as CSV chunks (again from the start when taken up again)."""
    filters = dict(job.parameters.get("filters") or {})
    for name in ("date_from", "date_to"):
        filters[name] = date.fromisoformat(filters[name]) if filters.get(name) else None
    entries = audit_entries(**filters)
    JobOutput.objects.filter(job=job).delete()
    for n, chunk in enumerate(audit_csv_rows(entries)):
        JobOutput.objects.create(job=job, position=n, data=gzip.compress(chunk.encode()))
        _beat(job)  # a long export is alive, not a worker that died
    return Status.SUCCEEDED, f"{plural(entries.count(), 'entry', 'entries')} written: download the CSV.", None


def _record(item: JobItem, status: str, message: str, entry: AuditEntry | None) -> None:
    if not JobItem.objects.filter(pk=item.pk, status=Status.SENDING).update(
        status=status, message=message[:2000], audit_entry=entry, finished_at=timezone.now()
    ):
        return
    if item.job.kind == Job.Kind.REVIEW_REMOVE:
        _settle_review_items(item, status, message, entry)
    done = status in JobItem.DONE
    Job.objects.filter(pk=item.job_id).update(
        done_count=F("done_count") + int(done),
        succeeded_count=F("succeeded_count") + int(status == Status.SUCCEEDED),
        not_done_count=F("not_done_count") + int(done and status != Status.SUCCEEDED),
    )


def _settle_review_items(item: JobItem, status: str, message: str, entry: AuditEntry | None) -> None:
    """Mark the review's entries of one batch removed or failed (failed ones can be retried)."""
    emails = set(item.payload["emails"])
    if entry is not None and entry.status == AuditEntry.Status.UNKNOWN and entry.resolution:
        not_removed = set((entry.evidence or {}).get("not_applied") or ())  # as read back
    elif status == Status.SUCCEEDED:
        not_removed = set()
    elif entry is not None and entry.details.get("applied_emails"):
        not_removed = emails - set(entry.details["applied_emails"])  # a batch cut short
    else:
        not_removed = emails
    entries = ReviewItem.objects.filter(review_id=item.job.parameters["review"])
    entries.filter(email__in=emails - not_removed).update(
        removal=ReviewItem.Removal.REMOVED, removal_error=""
    )
    entries.filter(email__in=not_removed).update(
        removal=ReviewItem.Removal.FAILED, removal_error=message[:2000]
    )


def _status_of(entry: AuditEntry) -> str:
    """An item's outcome from the audit entry its change wrote (an unknown one as read back)."""
    if entry.status == AuditEntry.Status.UNKNOWN:
        return {
            AuditEntry.Resolution.APPLIED: Status.SUCCEEDED,
            AuditEntry.Resolution.NOT_APPLIED: Status.FAILED,
        }.get(entry.resolution, Status.UNKNOWN)
    return {
        AuditEntry.Status.SUCCEEDED: Status.SUCCEEDED,
        AuditEntry.Status.FAILED: Status.FAILED,
        AuditEntry.Status.REFUSED: Status.REFUSED,
        AuditEntry.Status.FILED: Status.FILED,
    }.get(entry.status, Status.UNKNOWN)


def _message_of(entry: AuditEntry) -> str:
    if entry.status in (AuditEntry.Status.UNKNOWN, AuditEntry.Status.PENDING):
        return outcome_message(entry)
    if entry.status == AuditEntry.Status.SUCCEEDED:
        return entry.summary
    return entry.error.partition(": ")[2] or entry.error or entry.get_status_display()


def _settle_in_flight(job: Job, client: SegmentClient) -> None:
    """Items a dead worker left "sending": the entry their key wrote says what became of them
    (read back when unknown); an item with no entry was never sent and waits to be sent."""
    for item in JobItem.objects.filter(job=job, status=Status.SENDING).select_related("job"):
        entry = AuditEntry.objects.filter(submission_key=item.submission_key).order_by("-pk").first()
        if entry is None:
            JobItem.objects.filter(pk=item.pk, status=Status.SENDING).update(
                status=Status.PENDING, started_at=None
            )
            continue
        if entry.status == AuditEntry.Status.PENDING:
            entry = mark_abandoned(entry)  # its worker stopped: sent or not, nobody knows yet
        if entry.is_unresolved:
            entry = reconcile_entry(entry, by=None, client=client)
        _record(item, _status_of(entry), _message_of(entry), entry)
