"""Access requests: file, the approvers' queue, one request with its history and what can be done."""

from __future__ import annotations

import contextlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from groups_app.forms import (
    AccessRequestForm,
    BulkDecisionForm,
    CloseRequestForm,
    DenyForm,
    RequestQueueFilter,
)
from groups_app.models import AccessRequest, AuditEntry
from groups_app.roles import HANDLE_ACCESS_REQUESTS
from groups_app.rules.identity import same_identity
from groups_app.segment import SegmentError, ValidationFailed, check_id
from groups_app.services.approvals.access_requests import (
    ROLE_DENIED_DECIDING,
    access_request_approve,
    access_request_cancel,
    access_request_close,
    access_request_deny,
    access_request_file,
    access_request_queue,
    access_request_reconcile,
    access_request_retry,
    approval_refusal,
    decidable_by,
    is_stuck,
    may_handle,
)
from groups_app.services.catalogue import catalogue_entry
from groups_app.services.changes import change_refused
from groups_app.services.errors import InvalidInput, NotAllowed, ServiceError
from groups_app.services.groups import group_choices, group_get
from groups_app.services.mirror.selectors import (
    group_seen_missing,
    known_workspace_users,
    mirrored_group_or_none,
)
from groups_app.services.people import PersonNotFound, person_email
from groups_app.views.submit import show_errors

Status = AccessRequest.Status


def _with_unmirrored_group(groups: list[tuple[str, str]], group_id: str) -> list[tuple[str, str]]:
    """A group too new for the mirror (asked for from its own page) is read from Segment, once."""
    try:
        check_id(group_id)
        group = group_get(group_id=group_id)
    except (ValueError, SegmentError):
        return groups
    return sorted([*groups, (group.id, group.name)], key=lambda choice: choice[1].casefold())


@require_http_methods(["GET", "POST"])
def request_new_view(request: HttpRequest) -> HttpResponse:
    """Ask for access to a group, for yourself or (Help desk) for others."""
    can_file_for_others = request.user.has_perm(HANDLE_ACCESS_REQUESTS)
    groups = group_choices()
    wanted = request.POST.get("group") or request.GET.get("group", "")
    if wanted and wanted not in dict(groups):
        groups = _with_unmirrored_group(groups, wanted)
    initial = {"group": request.GET.get("group", "")}
    if can_file_for_others and request.GET.get("person"):
        # From a person's page: the request is for them (named by their People key, never by
        # their address in the URL).
        with contextlib.suppress(PersonNotFound):
            initial["emails"] = person_email(request.GET["person"])
    form = AccessRequestForm(
        request.POST or None, groups=groups, can_file_for_others=can_file_for_others, initial=initial
    )
    result = None
    if form.is_valid():
        try:
            result = access_request_file(
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
    chosen = form.data.get("group") if form.is_bound else form.initial.get("group")
    entry = catalogue_entry(chosen) if chosen and chosen in dict(groups) else None
    context = {"form": form, "result": result, "entry": entry, "nav_section": "requests"}
    return render(request, "groups_app/request_new.html", context, status=422 if form.errors else 200)


@require_http_methods(["GET"])
def request_list_view(request: HttpRequest) -> HttpResponse:
    """Approvers see the queue (oldest first, filtered); everyone else their own requests."""
    is_approver = request.user.has_perm(HANDLE_ACCESS_REQUESTS)
    mine = not is_approver or request.GET.get("mine") == "1"
    form = RequestQueueFilter(request.GET or None, initial={"status": "open"})
    if mine:
        access_requests = AccessRequest.objects.filter(requester=request.user).order_by("-created_at")
    else:
        filters = {"status": "open"}
        if form.is_bound and form.is_valid():
            filters = {k: v for k, v in form.cleaned_data.items() if v is not None}
        access_requests = access_request_queue(**filters)
    page = Paginator(access_requests, 50).get_page(request.GET.get("page"))
    can_bulk = is_approver and not mine
    context = {
        "form": form,
        "page": page,
        "mine": mine,
        "is_approver": is_approver,
        "can_bulk": can_bulk,
        # Only what the rule book lets this person decide is offered (a privileged group's
        # request is an Administrator's); the others say who decides.
        "decidable": decidable_by(request.user, [r for r in page.object_list if r.status == Status.PENDING])
        if can_bulk
        else set(),
        "nav_section": "requests",
    }
    return render(request, "groups_app/request_list.html", context)


# Each decision may read and change the group in Segment: a batch stays well within the deadline.
BULK_DECISIONS_MAX = 20


@require_POST
@login_required
def request_bulk_view(request: HttpRequest) -> HttpResponse:
    """Approve or deny the ticked pending requests of the queue: each is its own decision, with
    its own rule-book check and audit entry; what could not be decided is said, one by one."""
    form = BulkDecisionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect("groups:requests")
    data = form.cleaned_data
    ids = data["ids"][:BULK_DECISIONS_MAX]
    done, refused = [], []
    for access_request_id in ids:
        try:
            if data["decision"] == "approve":
                access_request = access_request_approve(
                    actor=request.user, access_request_id=access_request_id
                )
            else:
                access_request = access_request_deny(
                    actor=request.user, access_request_id=access_request_id, reason=data["reason"]
                )
        except ServiceError as exc:
            refused.append(f"#{access_request_id}: {exc.message}")
            continue
        done.append(f"#{access_request.pk} ({access_request.get_status_display().lower()})")
    verb = "Approved" if data["decision"] == "approve" else "Denied"
    if done:
        messages.success(request, f"{verb} {len(done)}: {', '.join(done)}.")
    if refused:
        messages.error(request, f"Not decided ({len(refused)}): {'; '.join(refused)}")
    if len(data["ids"]) > BULK_DECISIONS_MAX:
        messages.warning(
            request,
            f"At most {BULK_DECISIONS_MAX} at once: the other {len(data['ids']) - BULK_DECISIONS_MAX} wait.",
        )
    return redirect("groups:requests")


def _visible_request(request: HttpRequest, access_request_id: int) -> AccessRequest:
    access_request = get_object_or_404(AccessRequest, pk=access_request_id)
    user = request.user
    own_email = (user.email or "").lower()
    if not (
        may_handle(user, access_request.group_id)
        or access_request.requester_id == user.pk
        or access_request.email == own_email
    ):
        raise Http404("No such request.")
    return access_request


def _detail_context(request: HttpRequest, access_request: AccessRequest, **forms) -> dict:
    """The request, its history, and the actions the signed-in person may take on it now."""
    is_approver = may_handle(request.user, access_request.group_id)
    status = access_request.status
    # Up front, the rule book's answer on the mirror's copy of the group (approving asks it
    # again on the group as read then).
    group = mirrored_group_or_none(access_request.group_id)
    refusal = approval_refusal(access_request, request.user, group) if is_approver else ""
    can_provision = is_approver and not refusal
    return {
        "access_request": access_request,
        "group": group,
        "entry": catalogue_entry(access_request.group_id),
        "group_gone": group is None
        and access_request.status in (Status.PENDING, Status.PROVISIONING_FAILED)
        and group_seen_missing(access_request.group_id, since=access_request.created_at),
        "history": access_request.audit_entries.order_by("created_at", "id"),
        # An owner who approved a privileged group's request already waits for an Administrator.
        "can_decide": can_provision
        and status == Status.PENDING
        and access_request.owner_approved_by_username != request.user.get_username(),
        "decide_refusal": refusal if status in (Status.PENDING, Status.PROVISIONING_FAILED) else "",
        "can_retry": can_provision and (status == Status.PROVISIONING_FAILED or is_stuck(access_request)),
        "can_reconcile": is_approver and status == Status.OUTCOME_UNKNOWN,
        "can_close": is_approver and status == Status.PROVISIONING_FAILED,
        "can_cancel": access_request.requester_id == request.user.pk and status == Status.PENDING,
        "deny_form": forms.get("deny_form") or DenyForm(),
        "close_form": forms.get("close_form") or CloseRequestForm(),
        "nav_section": "requests",
    }


@require_http_methods(["GET"])
def request_detail_view(request: HttpRequest, access_request_id: int) -> HttpResponse:
    """One request: who, where, why, until when, its history, and what can be done now."""
    access_request = _visible_request(request, access_request_id)
    return render(request, "groups_app/request_detail.html", _detail_context(request, access_request))


ACTIONS = {
    "approve": AuditEntry.Action.REQUEST_APPROVE,
    "retry": AuditEntry.Action.REQUEST_APPROVE,
    "reconcile": AuditEntry.Action.REQUEST_APPROVE,
    "deny": AuditEntry.Action.REQUEST_DENY,
    "close": AuditEntry.Action.REQUEST_CLOSE,
    "cancel": AuditEntry.Action.REQUEST_CANCEL,
}


@require_POST
def request_decide_view(request: HttpRequest, access_request_id: int, action: str) -> HttpResponse:
    """Approve, deny, cancel, retry, reconcile or close; each through its service, each audited."""
    if action not in ACTIONS:
        raise Http404("Unknown action.")
    access_request = _visible_request(request, access_request_id)
    if action != "cancel" and not may_handle(request.user, access_request.group_id):
        change_refused(
            actor=request.user,
            action=ACTIONS[action],
            reason=ROLE_DENIED_DECIDING,
            group_id=access_request.group_id,
            path=request.path,
        )
        raise PermissionDenied(ROLE_DENIED_DECIDING)
    deny_form = DenyForm(request.POST if action == "deny" else None)
    close_form = CloseRequestForm(request.POST if action == "close" else None)
    actor = request.user
    try:
        if action == "approve":
            access_request = access_request_approve(actor=actor, access_request_id=access_request_id)
        elif action == "retry":
            access_request = access_request_retry(actor=actor, access_request_id=access_request_id)
        elif action == "reconcile":
            access_request = access_request_reconcile(actor=actor, access_request_id=access_request_id)
        elif action == "cancel":
            access_request_cancel(actor=actor, access_request_id=access_request_id)
        elif action == "deny":
            reason = deny_form.cleaned_data["reason"] if deny_form.is_valid() else ""
            access_request_deny(actor=actor, access_request_id=access_request_id, reason=reason)
        else:
            reason = close_form.cleaned_data["reason"] if close_form.is_valid() else ""
            access_request_close(actor=actor, access_request_id=access_request_id, reason=reason)
    except NotAllowed as exc:
        messages.error(request, exc.message)
    except InvalidInput as exc:
        form = {"deny": deny_form, "close": close_form}.get(action)
        if form is not None and "reason" in exc.field_errors:
            form.add_error("reason", exc.field_errors["reason"])
            context = _detail_context(request, access_request, deny_form=deny_form, close_form=close_form)
            return render(request, "groups_app/request_detail.html", context, status=422)
        messages.error(request, exc.message)
    else:
        access_request.refresh_from_db()
        level, text = _decision_message(action, access_request)
        messages.add_message(request, level, text)
    return redirect("groups:request", access_request_id=access_request_id)


def _was_invited(entry: AuditEntry, email: str) -> bool:
    """Whether the addition made `email` a pending invite (Segment invites an email that is not a
    workspace user yet) rather than a member."""
    evidence = entry.evidence or {}
    invited = [*(entry.details.get("invited") or ()), *(evidence.get("invited") or ())]
    if any(same_identity(email, other) for other in invited):
        return True
    if entry.status != AuditEntry.Status.UNKNOWN or "invited" in evidence:
        return False
    # Segment's answer was lost, so the entry cannot say: the mirror knows the workspace's users.
    return not known_workspace_users([email])


def _decision_message(action: str, access_request: AccessRequest) -> tuple[int, str]:
    """Words that say what happened, and whether it went well (a failure is never shown as success)."""
    email, group = access_request.email, access_request.group_name
    status = access_request.status
    if action in ("approve", "retry", "reconcile"):
        if status == Status.PENDING and access_request.owner_approved_by_username:
            return (
                messages.SUCCESS,
                f"Your approval as an owner is recorded. {group} is a privileged group: an Administrator "
                f"must approve too before {email} is added.",
            )
        if status == Status.PROVISIONED:
            entry = access_request.provisioning_entry
            if entry is not None and _was_invited(entry, email):
                return (
                    messages.SUCCESS,
                    f"Approved: {email} was invited to {group}; the access starts when they accept "
                    "Segment's workspace invitation.",
                )
            return messages.SUCCESS, f"Approved: {email} was added to {group}."
        if status == Status.PROVISIONING_FAILED:
            entry = access_request.provisioning_entry
            if entry is not None and entry.status == AuditEntry.Status.REFUSED:
                # Never sent: one of Group Admin's own rules (e.g. ALLOWED_EMAIL_DOMAINS) refused it.
                return (
                    messages.ERROR,
                    f"Group Admin's rules do not allow adding {email}: {access_request.provisioning_error} "
                    "Nothing was sent to Segment. Close the request, or retry once the rule allows it.",
                )
            return (
                messages.ERROR,
                f"Segment did not add {email}: {access_request.provisioning_error} "
                "Retry, or close the request if it cannot be done.",
            )
        if status == Status.OUTCOME_UNKNOWN:
            return (
                messages.WARNING,
                f"Segment did not confirm adding {email}. Nothing will be sent again until "
                "reading the group back shows whether it was applied; use Check again.",
            )
    return messages.SUCCESS, {
        "deny": "Denied; the requester was told why.",
        "cancel": "Your request was cancelled.",
        "close": "Closed as not possible; the requester was told why.",
    }.get(action, f"The request is now {access_request.get_status_display().lower()}.")
