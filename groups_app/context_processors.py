from django.conf import settings
from django.http import HttpRequest

from groups_app.roles import VIEW, role_label


def dashboard(request: HttpRequest) -> dict:
    """What the base layout needs on every page: sandbox banner, role, navigation."""
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    return {
        "sandbox_mode": settings.SANDBOX_MODE,
        "role_label": role_label(user) if signed_in else "",
        "can_view": signed_in and user.has_perm(VIEW),
    }
