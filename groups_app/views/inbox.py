"""Waiting for you: the decisions a person may take and the changes they must follow up."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from groups_app.services.approvals.inbox import inbox_for


@require_GET
@login_required
def inbox_view(request: HttpRequest) -> HttpResponse:
    """Everything waiting for the signed-in person, each item linking to where it is decided."""
    context = {"inbox": inbox_for(request.user), "nav_section": "inbox"}
    return render(request, "groups_app/inbox.html", context)
