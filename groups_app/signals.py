"""What the dashboard records when Django signs people in, and when roles change outside it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed

from groups_app.middleware import client_ip
from groups_app.roles import ROLE_PERMISSIONS
from groups_app.services.accounts import role_changes_audited
from groups_app.services.sign_in import sign_in_failed, sign_in_succeeded


def _on_login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    sign_in_failed(
        username=str(credentials.get("username") or ""),
        client_ip=client_ip(request) if request is not None else None,
        user_agent=request.headers.get("User-Agent", "") if request is not None else "",
        path=request.path if request is not None else "",
    )


def _on_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    sign_in_succeeded(username=user.get_username())


def _on_roles_changed(
    sender: Any, instance: Any, action: str, pk_set: set | None, reverse: bool, **kwargs: Any
) -> None:
    """A role (one of the dashboard's Django groups) granted or removed anywhere, e.g. the Django admin."""
    if action not in ("post_add", "post_remove", "pre_clear") or reverse:
        return
    if action == "pre_clear":
        pk_set = set(instance.groups.values_list("pk", flat=True))
        action = "post_remove"
    roles = list(
        Group.objects.filter(pk__in=pk_set or (), name__in=ROLE_PERMISSIONS).values_list("name", flat=True)
    )
    if roles:
        role_changes_audited(user=instance, roles=roles, granted=action == "post_add")


def connect() -> None:
    user_login_failed.connect(_on_login_failed, dispatch_uid="group-admin-login-failed")
    user_logged_in.connect(_on_logged_in, dispatch_uid="group-admin-logged-in")
    m2m_changed.connect(
        _on_roles_changed, sender=get_user_model().groups.through, dispatch_uid="group-admin-roles-changed"
    )
