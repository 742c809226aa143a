from django.conf import settings
from django.http import HttpRequest

from groups_app.roles import HANDLE_ACCESS_REQUESTS, VIEW, role_label
from groups_app.services.approvals.access_requests import needs_person_count
from groups_app.services.approvals.inbox import inbox_count


def dashboard(request: HttpRequest) -> dict:
    """What the base layout needs on every page: sandbox banner, role, navigation."""
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    is_approver = signed_in and user.has_perm(HANDLE_ACCESS_REQUESTS)
    return {
        "sandbox_mode": settings.SANDBOX_MODE,
        "role_label": role_label(user) if signed_in else "",
        "can_view": signed_in and user.has_perm(VIEW),
        "is_approver": is_approver,
        "pending_requests": _pending_requests if is_approver else 0,
        # Counted only when a template shows it (templates call callables).
        "waiting_count": (lambda: inbox_count(user)) if signed_in else 0,
    }


def _pending_requests() -> int:
    """Requests waiting for a person; counted only when a template shows it (templates call callables)."""
    return needs_person_count()
