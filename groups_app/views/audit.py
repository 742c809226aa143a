"""The audit log: list with filters, one entry, CSV export."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from groups_app.forms import AuditFilterForm
from groups_app.models import AuditEntry
from groups_app.roles import VIEW
from groups_app.services.audit_details import detail_sections
from groups_app.services.audit_log import audit_actor_choices, audit_csv_rows, audit_entries
from groups_app.services.changes import ACTION_PERMISSIONS, entry_check_again
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.jobs import EXPORT_IN_WORKER_OVER, audit_export_start
from groups_app.views.downloads import csv_download
from groups_app.views.jobs import to_started_job

PAGE_SIZE = 50


def _filtered(request: HttpRequest):
    form = AuditFilterForm(request.GET or None)
    filters = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        filters = {
            "text": data["q"],
            "actor": data["actor"],
            "action": data["action"],
            "group": data["group"],
            "status": data["status"],
            "date_from": data["date_from"],
            "date_to": data["date_to"],
        }
    return form, audit_entries(**filters), any(filters.values())


@require_GET
@permission_required(VIEW, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def audit_list_view(request: HttpRequest) -> HttpResponse:
    """Every change made through the dashboard, newest first, filtered and paged."""
    form, entries, is_filtered = _filtered(request)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    template = "groups_app/audit_list.html"
    if request.htmx and request.htmx.target == "audit-table":
        template += "#audit-table"
    context = {"form": form, "page": page, "filtered": is_filtered, "nav_section": "audit"}
    if not template.endswith("#audit-table"):
        context["actor_choices"] = audit_actor_choices()
    return render(request, template, context)


@require_GET
@permission_required(VIEW, raise_exception=True)
def audit_entry_view(request: HttpRequest, entry_id: int) -> HttpResponse:
    """One entry with its details laid out."""
    entry = get_object_or_404(AuditEntry, pk=entry_id)
    permission = ACTION_PERMISSIONS.get(entry.action)
    context = {
        "entry": entry,
        "can_check_again": entry.is_unresolved and bool(permission) and request.user.has_perm(permission),
        "sections": detail_sections(entry),
        "evidence": entry.evidence or {},
        "nav_section": "audit",
    }
    return render(request, "groups_app/audit_entry.html", context)


@require_POST
@permission_required(VIEW, raise_exception=True)
def audit_entry_check_view(request: HttpRequest, entry_id: int) -> HttpResponse:
    """Read back now what a change whose outcome is unknown touched; say what was found."""
    try:
        entry = entry_check_again(actor=request.user, entry_id=entry_id)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except InvalidInput as exc:
        messages.error(request, exc.message)
    else:
        if entry.resolution:
            messages.success(request, f"Read back: {entry.get_resolution_display().lower()}.")
        else:
            messages.warning(
                request, "Segment could not be read yet; the outcome is still unknown. Try Check again later."
            )
    return redirect("groups:audit-entry", entry_id=entry_id)


@require_http_methods(["GET", "POST"])
@permission_required(VIEW, raise_exception=True)
def audit_export_view(request: HttpRequest) -> HttpResponse:
    """The filtered entries as a CSV download, streamed; past EXPORT_IN_WORKER_OVER entries, a
    page offering to have the worker write it (POST), downloaded from the job's page."""
    _, entries, _ = _filtered(request)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    filename = f"group-admin-audit-{stamp}.csv"
    if entries[: EXPORT_IN_WORKER_OVER + 1].count() <= EXPORT_IN_WORKER_OVER:
        return csv_download(request, audit_csv_rows(entries), filename)
    if request.method == "POST":
        job = audit_export_start(actor=request.user, filters=_filter_values(request), filename=filename)
        return to_started_job(
            request, job, message="Started. The worker writes the file now; download it here when it is done."
        )
    context = {"limit": EXPORT_IN_WORKER_OVER, "query": request.GET.urlencode(), "nav_section": "audit"}
    return render(request, "groups_app/audit_export_large.html", context)


def _filter_values(request: HttpRequest) -> dict:
    """The audit log's filters as the job keeps them (dates as ISO text)."""
    form = AuditFilterForm(request.GET or None)
    if not (form.is_bound and form.is_valid()):
        return {}
    return {
        name: value.isoformat() if hasattr(value, "isoformat") else value
        for name, value in (
            ("text", form.cleaned_data["q"]),
            ("actor", form.cleaned_data["actor"]),
            ("action", form.cleaned_data["action"]),
            ("group", form.cleaned_data["group"]),
            ("status", form.cleaned_data["status"]),
            ("date_from", form.cleaned_data["date_from"]),
            ("date_to", form.cleaned_data["date_to"]),
        )
    }
