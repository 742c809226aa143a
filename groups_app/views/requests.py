"""Access requests: file, the approvers' queue, one request with its history and decisions."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from groups_app.forms import AccessRequestForm, DenyForm, RequestQueueFilter
from groups_app.models import AccessRequest
from groups_app.roles import HANDLE_ACCESS_REQUESTS
from groups_app.segment import ValidationFailed
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.groups import group_index
from groups_app.services.requests import (
    request_approve,
    request_cancel,
    request_deny,
    request_file,
    request_queue,
    request_retry,
)
from groups_app.views.changes import show_errors


@require_http_methods(["GET", "POST"])
def request_new_view(request: HttpRequest) -> HttpResponse:
    """Ask for access to a group, for yourself or (Help desk) for others."""
    can_file_for_others = request.user.has_perm(HANDLE_ACCESS_REQUESTS)
    groups = sorted(group_index().groups, key=lambda g: g.name.casefold())
    form = AccessRequestForm(
        request.POST or None,
        groups=groups,
        can_file_for_others=can_file_for_others,
        initial={"group": request.GET.get("group", "")},
    )
    result = None
    if form.is_valid():
        try:
            result = request_file(
                actor=request.user,
                group_id=form.cleaned_data["group"],
                emails=form.cleaned_data.get("emails") or None,
                justification=form.cleaned_data["justification"],
                needed_until=form.cleaned_data["needed_until"],
            )
        except (InvalidInput, ValidationFailed) as exc:
            show_errors(form, exc)
        except NotAllowed as exc:
            form.add_error("emails" if "emails" in form.fields else None, exc.message)
        else:
            if result.filed:
                for access_request in result.filed:
                    messages.success(
                        request,
                        f"Requested access to {access_request.group_name} for {access_request.email}.",
                    )
                for email in result.already_members:
                    messages.info(request, f"{email} is already a member; no request was filed for it.")
                for duplicate in result.duplicates:
                    messages.info(
                        request, f"{duplicate.email} already has a pending request (#{duplicate.pk})."
                    )
                return redirect("groups:requests")
    context = {"form": form, "result": result, "nav_section": "requests"}
    return render(request, "groups_app/request_new.html", context, status=422 if form.errors else 200)


@require_http_methods(["GET"])
def request_list_view(request: HttpRequest) -> HttpResponse:
    """Approvers see the queue (oldest first, filtered); everyone else their own requests."""
    is_approver = request.user.has_perm(HANDLE_ACCESS_REQUESTS)
    mine = not is_approver or request.GET.get("mine") == "1"
    form = RequestQueueFilter(request.GET or None, initial={"status": "pending"})
    if mine:
        requests = AccessRequest.objects.filter(requester=request.user).order_by("-created_at")
    else:
        filters = {"status": "pending"}
        if form.is_bound and form.is_valid():
            filters = {k: v for k, v in form.cleaned_data.items() if v not in (None,)}
        requests = request_queue(**filters)
    page = Paginator(requests, 50).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "mine": mine,
        "is_approver": is_approver,
        "nav_section": "requests",
    }
    return render(request, "groups_app/request_list.html", context)


def _visible_request(request: HttpRequest, request_id: int) -> AccessRequest:
    access_request = get_object_or_404(AccessRequest, pk=request_id)
    user = request.user
    own_email = (user.email or "").lower()
    if not (
        user.has_perm(HANDLE_ACCESS_REQUESTS)
        or access_request.requester_id == user.pk
        or access_request.email == own_email
    ):
        raise Http404("No such request.")
    return access_request


@require_http_methods(["GET"])
def request_detail_view(request: HttpRequest, request_id: int) -> HttpResponse:
    """One request: who, where, why, until when, its history, and what can be done now."""
    access_request = _visible_request(request, request_id)
    is_approver = request.user.has_perm(HANDLE_ACCESS_REQUESTS)
    context = {
        "access_request": access_request,
        "history": access_request.audit_entries.order_by("created_at", "id"),
        "can_decide": is_approver and access_request.status == AccessRequest.Status.PENDING,
        "can_retry": is_approver and access_request.status == AccessRequest.Status.PROVISIONING_FAILED,
        "can_cancel": access_request.requester_id == request.user.pk
        and access_request.status == AccessRequest.Status.PENDING,
        "deny_form": DenyForm(),
        "nav_section": "requests",
    }
    return render(request, "groups_app/request_detail.html", context)


@require_POST
def request_decide_view(request: HttpRequest, request_id: int, action: str) -> HttpResponse:
    """Approve, deny, cancel or retry; each through its service, each audited."""
    access_request = _visible_request(request, request_id)
    deny_form = DenyForm(request.POST if action == "deny" else None)
    try:
        if action == "approve":
            access_request = request_approve(actor=request.user, request_id=request_id)
        elif action == "retry":
            access_request = request_retry(actor=request.user, request_id=request_id)
        elif action == "cancel":
            request_cancel(actor=request.user, request_id=request_id)
        elif action == "deny":
            if not deny_form.is_valid():
                return _detail_with_deny_errors(request, access_request, deny_form)
            request_deny(actor=request.user, request_id=request_id, reason=deny_form.cleaned_data["reason"])
        else:
            raise Http404("Unknown action.")
    except NotAllowed as exc:
        if not request.user.has_perm(HANDLE_ACCESS_REQUESTS) and action != "cancel":
            raise PermissionDenied(exc.message) from None
        messages.error(request, exc.message)
    except InvalidInput as exc:
        if action == "deny" and "reason" in exc.field_errors:
            deny_form.add_error("reason", exc.field_errors["reason"])
            return _detail_with_deny_errors(request, access_request, deny_form)
        messages.error(request, exc.message)
    else:
        access_request.refresh_from_db()
        messages.success(request, _decision_message(action, access_request))
    return redirect("groups:request", request_id=request_id)


def _detail_with_deny_errors(
    request: HttpRequest, access_request: AccessRequest, deny_form: DenyForm
) -> HttpResponse:
    context = {
        "access_request": access_request,
        "history": access_request.audit_entries.order_by("created_at", "id"),
        "can_decide": True,
        "deny_form": deny_form,
        "nav_section": "requests",
    }
    return render(request, "groups_app/request_detail.html", context, status=422)


def _decision_message(action: str, access_request: AccessRequest) -> str:
    if access_request.status == AccessRequest.Status.PROVISIONING_FAILED:
        return f"Approved, but Segment did not add {access_request.email} yet: {access_request.provisioning_error} Use Retry."
    return {
        "approve": f"Approved: {access_request.email} was added to {access_request.group_name}.",
        "retry": f"{access_request.email} was added to {access_request.group_name}.",
        "deny": "Denied; the requester was told why.",
        "cancel": "Your request was cancelled.",
    }[action]
