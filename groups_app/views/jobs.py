"""Jobs: the page of one job (its progress, each item's outcome as it happens, Cancel) and the
list of one's jobs. A job is seen and cancelled by whoever started it and by Administrators;
anyone else gets a 404, as for a job that does not exist."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from groups_app.roles import is_administrator
from groups_app.services.errors import InvalidInput
from groups_app.services.jobs import (
    JobNotFound,
    job_cancel,
    job_download,
    job_for,
    job_items,
    job_list,
    job_person_key,
)
from groups_app.views.downloads import csv_download

# While a job runs, its page asks for its progress this often (seconds); without JavaScript it
# reloads itself as often.
POLL_SECONDS = 2


STARTED = "Started. The worker sends the changes now; you can leave this page."


def to_started_job(request: HttpRequest, job, *, is_new: bool = True, message: str = STARTED) -> HttpResponse:
    """From the form that queued a job to the job's page, with a message saying so: the page
    opens on that message (it takes focus and is read out), not on nothing in particular."""
    if is_new:
        messages.success(request, message)
    else:
        messages.info(request, "This form had started this job already; it was not started again.")
    url = reverse("groups:job", args=[job.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def job_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """One job: progress, each item's outcome and audit entry; the progress region alone for htmx."""
    try:
        job = job_for(actor=request.user, job_id=job_id)
    except JobNotFound:
        raise Http404("No such job.") from None
    template = "groups_app/job_detail.html"
    if request.htmx and request.htmx.target == "job-progress":
        template += "#job-progress"
    items = job_items(job)
    context = {
        "job": job,
        "items": items,
        # A cancelled item counts as done (nothing more will happen to it) but was never sent.
        "cancelled_count": sum(1 for item in items if item.status == item.Status.CANCELLED),
        "person_key": job_person_key(job),
        "poll_seconds": POLL_SECONDS,
        "nav_section": "jobs",
    }
    return render(request, template, context)


@require_POST
def job_cancel_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """Cancel a job: what was not started is not sent; what is in flight finishes."""
    try:
        job = job_cancel(actor=request.user, job_id=job_id)
    except JobNotFound:
        raise Http404("No such job.") from None
    except InvalidInput as exc:
        messages.info(request, exc.message)
    else:
        if job.is_active:
            messages.success(
                request, "Cancelled: no further item is sent; those already on their way finish."
            )
        else:
            messages.success(request, "Cancelled: nothing more is sent.")
    url = reverse("groups:job", args=[job_id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
def job_list_view(request: HttpRequest) -> HttpResponse:
    """The jobs one started (every job, for Administrators), newest first."""
    jobs = job_list(actor=request.user)
    context = {"jobs": jobs, "is_administrator": is_administrator(request.user), "nav_section": "jobs"}
    return render(request, "groups_app/job_list.html", context)


@require_GET
def job_download_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """The file an export job wrote, streamed."""
    try:
        chunks, filename = job_download(actor=request.user, job_id=job_id)
    except JobNotFound:
        raise Http404("No such file.") from None
    return csv_download(request, chunks, filename)
