from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from groups_app.roles import HANDLE_ACCESS_REQUESTS, VIEW, role_label
from groups_app.services.approvals.inbox import inbox_for


def dashboard(request: HttpRequest) -> dict:
    """What the base layout needs on every page: sandbox banner, role, navigation."""
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    is_approver = signed_in and user.has_perm(HANDLE_ACCESS_REQUESTS)
    # Read once, and only when a template shows one of its counts (templates call callables).
    inbox = SimpleLazyObject(lambda: inbox_for(user))
    return {
        "sandbox_mode": settings.SANDBOX_MODE,
        "role_label": role_label(user) if signed_in else "",
        "can_view": signed_in and user.has_perm(VIEW),
        "is_approver": is_approver,
        # The requests this person may act on, as the rule book says (not the whole queue).
        "pending_requests": (lambda: inbox.access_request_count) if is_approver else 0,
        "waiting_count": (lambda: inbox.count) if signed_in else 0,
    }
