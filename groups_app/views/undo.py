"""Undo a change observed outside Group Admin: preview its reverse, then apply it (Administrators)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from groups_app.forms import UndoForm
from groups_app.roles import MANAGE_GROUPS
from groups_app.rules import book
from groups_app.services.approvals.undo import NOT_ADMINISTRATOR, undo_apply, undo_plan
from groups_app.services.errors import DuplicateSubmission, InvalidInput, NotAllowed
from groups_app.views.submit import duplicate_message

TEMPLATE = "groups_app/undo.html"


@require_http_methods(["GET", "POST"])
def audit_undo_view(request: HttpRequest, entry_id: int) -> HttpResponse:
    """GET previews the reverse of an observed change; POST applies it, step by step."""
    if request.method == "GET" and not book.may_act(request.user, MANAGE_GROUPS):
        raise PermissionDenied(NOT_ADMINISTRATOR)
    try:
        plan = undo_plan(entry_id=entry_id)
    except InvalidInput as exc:
        return render(request, TEMPLATE, {"problem": exc.message, "nav_section": "audit"}, status=404)
    form = UndoForm(request.POST or None)
    context = {"plan": plan, "entry": plan.entry, "form": form, "nav_section": "audit"}
    if request.method == "GET" or not form.is_valid():
        return render(request, TEMPLATE, context)
    try:
        result = undo_apply(
            actor=request.user, entry_id=entry_id, submission_key=form.cleaned_data["submission_key"] or None
        )
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except DuplicateSubmission as exc:
        form.add_error(None, duplicate_message(exc))
        return render(request, TEMPLATE, context, status=422)
    except InvalidInput as exc:
        form.add_error(None, exc.message)
        return render(request, TEMPLATE, context, status=422)
    context.update(result=result)
    return render(request, TEMPLATE, context)
