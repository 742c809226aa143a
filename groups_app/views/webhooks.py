"""The webhook deliveries page: what was sent where, and how it went (Administrators)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from groups_app.models import WebhookDelivery
from groups_app.roles import MANAGE_GROUPS
from groups_app.services.webhooks import receivers, webhook_delivery_list


@require_GET
@permission_required(MANAGE_GROUPS, raise_exception=True)
def webhook_deliveries_view(request: HttpRequest) -> HttpResponse:
    """Every delivery, newest first: event, receiver, status, attempts, last error, next try."""
    status = request.GET.get("status", "")
    if status not in WebhookDelivery.Status.values:
        status = ""
    page = Paginator(webhook_delivery_list(status=status), 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "status": status,
        "statuses": WebhookDelivery.Status.choices,
        "receivers": [receiver.shown for receiver in receivers()],
        "max_attempts": settings.WEBHOOK_MAX_ATTEMPTS,
        "nav_section": "audit",
    }
    return render(request, "groups_app/webhook_deliveries.html", context)
