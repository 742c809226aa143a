"""Membership and invite reviews: start, decide (htmx), complete, retry, export."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from groups_app.forms import ReviewAssignForm, ReviewDecisionForm, ReviewListQuery, submission_key_from
from groups_app.models import AuditEntry, Review, ReviewItem
from groups_app.roles import RUN_REVIEWS, VIEW
from groups_app.rules.book import ROLE_DENIED
from groups_app.services.changes import change_refused
from groups_app.services.errors import DuplicateSubmission, InvalidInput
from groups_app.services.reviews import (
    invite_ages,
    may_review,
    review_assign,
    review_complete,
    review_csv_rows,
    review_decide,
    review_list,
    review_progress,
    review_retry_removals,
    review_start,
)
from groups_app.views.downloads import csv_download
from groups_app.views.submit import change_permission_required

PAGE_SIZE = 50


@require_GET
@permission_required(VIEW, raise_exception=True)
def review_list_view(request: HttpRequest) -> HttpResponse:
    """Every review, or one group's (?group=id), open ones first."""
    query = ReviewListQuery(request.GET)
    group_id = query.cleaned_data["group"] if query.is_valid() else ""
    if query.errors:
        messages.error(
            request, f"Not a group id, so every review is shown: {' '.join(query.errors['group'])}"
        )
    page = Paginator(review_list(group_id=group_id), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "groups_app/review_list.html",
        {"page": page, "group_id": group_id, "nav_section": "reviews"},
        status=400 if query.errors else 200,
    )


@require_POST
@change_permission_required(RUN_REVIEWS, AuditEntry.Action.REVIEW_START)
def review_start_view(request: HttpRequest, group_id: str) -> HttpResponse:
    started = review_start(actor=request.user, group_id=group_id)
    review = started.review
    if not started.is_new:
        messages.info(request, "This group already has an open review: here it is.")
    elif review.count_mismatch:
        messages.warning(
            request,
            f"Segment reported {review.expected_count} members but {review.snapshot_count} were read: "
            "the group changed while it was read, or the listing was cut short.",
        )
    return redirect("groups:review", review_id=review.pk)


def _review_context(request: HttpRequest, review: Review) -> dict:
    items = review.items.all()
    only_undecided = request.GET.get("undecided") == "1"
    if only_undecided:
        items = items.filter(decision="")
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    decided, total = review_progress(review)
    return {
        "review": review,
        "page": page,
        "only_undecided": only_undecided,
        "decided": decided,
        "total": total,
        "ages": invite_ages(review, emails=[item.email for item in page.object_list if item.is_invite]),
        "can_decide": may_review(request.user, review.group_id) and review.status == Review.Status.OPEN,
        "can_complete": may_review(request.user, review.group_id),
        "failed_count": review.items.filter(removal=ReviewItem.Removal.FAILED).count(),
        "assign_form": ReviewAssignForm(
            initial={"reviewer": review.reviewer_id, "due_date": review.due_date}
        ),
        "nav_section": "reviews",
    }


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def review_detail_view(request: HttpRequest, review_id: int) -> HttpResponse:
    review = get_object_or_404(Review, pk=review_id)
    # Everyone with a role reads reviews; an owner without one reads their groups'.
    if not (request.user.has_perm(VIEW) or may_review(request.user, review.group_id)):
        raise PermissionDenied("Your role does not allow reading reviews.")
    template = "groups_app/review_detail.html"
    if request.htmx and request.htmx.target in ("review-table", "review-progress"):
        template += f"#{request.htmx.target}"
    return render(request, template, _review_context(request, review))


def _back_to_review(request: HttpRequest, review: Review) -> str:
    """Where a plain (non-htmx) decision returns: the page it came from, if it is ours."""
    target = request.POST.get("next", "")
    is_safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and is_safe else reverse("groups:review", args=[review.pk])


def review_permission_required(action: str | None = None) -> Callable:
    """Run reviews of this review's group (by role, or as its owner); a refused POST is audited."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, review_id: int, *args: Any, **kwargs: Any) -> HttpResponse:
            review = get_object_or_404(Review, pk=review_id)
            if not may_review(request.user, review.group_id):
                if action and request.method == "POST":
                    change_refused(
                        actor=request.user,
                        action=action,
                        reason=ROLE_DENIED,
                        group_id=review.group_id,
                        path=request.path,
                    )
                raise PermissionDenied(ROLE_DENIED)
            return view(request, review_id, *args, **kwargs)

        return wrapper

    return decorator


@require_POST
@review_permission_required()
def review_decide_view(request: HttpRequest, review_id: int, item_id: int) -> HttpResponse:
    """Keep or remove one entry; htmx swaps the row and refreshes the progress."""
    review = get_object_or_404(Review, pk=review_id)
    item = get_object_or_404(ReviewItem, pk=item_id, review=review)
    form = ReviewDecisionForm(request.POST)
    if form.is_valid():
        try:
            (item,) = review_decide(
                actor=request.user,
                review_id=review.pk,
                item_ids=[item.pk],
                decision=form.cleaned_data["decision"],
                note=form.cleaned_data["note"] if "note" in request.POST else None,
            )
        except InvalidInput as exc:
            messages.error(request, exc.message)
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    if not request.htmx:
        return redirect(_back_to_review(request, review))
    context = {
        "review": review,
        "item": item,
        "ages": invite_ages(review, emails=[item.email]) if item.is_invite else {},
        "can_decide": review.status == Review.Status.OPEN,
    }
    response = render(request, "groups_app/review_detail.html#review-row", context)
    return trigger_client_event(response, "review-progress")


@require_POST
@review_permission_required()
def review_keep_page_view(request: HttpRequest, review_id: int) -> HttpResponse:
    """Keep every still undecided entry of the current page (decided ones stay as they are)."""
    review = get_object_or_404(Review, pk=review_id)
    ids = [int(value) for value in request.POST.getlist("item") if value.isascii() and value.isdigit()]
    try:
        review_decide(
            actor=request.user,
            review_id=review.pk,
            item_ids=ids,
            decision=ReviewItem.Decision.KEEP,
            only_undecided=True,
        )
    except InvalidInput as exc:
        messages.error(request, exc.message)
    if request.htmx:
        response = render(
            request, "groups_app/review_detail.html#review-table", _review_context(request, review)
        )
        return trigger_client_event(response, "review-progress")
    return redirect(_back_to_review(request, review))


@require_http_methods(["GET", "POST"])
@review_permission_required(AuditEntry.Action.REVIEW_COMPLETE)
def review_complete_view(request: HttpRequest, review_id: int) -> HttpResponse:
    """Summary of who will be removed; confirming removes them."""
    review = get_object_or_404(Review, pk=review_id)
    error = ""
    if request.method == "POST":
        try:
            review = review_complete(
                actor=request.user,
                review_id=review.pk,
                submission_key=submission_key_from(request.POST),
            )
        except InvalidInput as exc:
            error = exc.message
        except DuplicateSubmission:
            error = "This review was already completed."
        else:
            if review.removal_job is not None:
                count = review.items.filter(decision=ReviewItem.Decision.REMOVE).count()
                messages.success(
                    request,
                    f"Review completed; the worker removes the {count} entries marked remove, "
                    "a batch at a time: this page shows each batch as it is done.",
                )
                return redirect("groups:job", job_id=review.removal_job.pk)
            failed = review.items.filter(removal=ReviewItem.Removal.FAILED).count()
            if failed:
                messages.error(request, f"{failed} removal(s) failed; see the list and retry them.")
            else:
                messages.success(
                    request, f"Review completed; {review.items.filter(removal='removed').count()} removed."
                )
            return redirect("groups:review", review_id=review.pk)
    decided, total = review_progress(review)
    context = {
        "review": review,
        "removals": review.items.filter(decision=ReviewItem.Decision.REMOVE),
        "decided": decided,
        "total": total,
        "error": error,
        "submission_key": uuid.uuid4().hex,
        "nav_section": "reviews",
    }
    return render(request, "groups_app/review_complete.html", context, status=422 if error else 200)


@require_POST
@review_permission_required(AuditEntry.Action.MEMBERS_REMOVE)
def review_retry_view(request: HttpRequest, review_id: int) -> HttpResponse:
    review = review_retry_removals(actor=request.user, review_id=review_id)
    failed = review.items.filter(removal=ReviewItem.Removal.FAILED).count()
    if failed:
        messages.error(request, f"{failed} removal(s) still failed.")
    else:
        messages.success(request, "Every marked entry is now removed.")
    return redirect("groups:review", review_id=review_id)


@require_GET
@permission_required(VIEW, raise_exception=True)
def review_export_view(request: HttpRequest, review_id: int) -> HttpResponse:
    review = get_object_or_404(Review, pk=review_id)
    return csv_download(request, review_csv_rows(review), f"review-{review.pk}-{review.group_id}.csv")


@require_POST
@change_permission_required(RUN_REVIEWS, AuditEntry.Action.REVIEW_ASSIGN)
def review_assign_view(request: HttpRequest, review_id: int) -> HttpResponse:
    """Name the reviewer and the due date (a reminder is mailed before it)."""
    review = get_object_or_404(Review, pk=review_id)
    form = ReviewAssignForm(request.POST)
    if form.is_valid():
        try:
            review_assign(
                actor=request.user,
                review_id=review.pk,
                reviewer=form.cleaned_data["reviewer"],
                due_date=form.cleaned_data["due_date"],
            )
        except InvalidInput as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Saved who reviews and by when.")
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return redirect("groups:review", review_id=review.pk)
