"""What the dashboard records when Django signs people in, and when accounts, roles or
permissions change outside its pages (the Django admin, single sign-on, any other view)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save

from groups_app.middleware import client_ip
from groups_app.services.accounts import (
    EXTERNAL_SESSION_KEY,
    WATCHED_FIELDS,
    account_created_audited,
    account_fields_audited,
    account_permissions_audited,
    external_session_end,
    role_changes_audited,
    role_permissions_audited,
)
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


def _on_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        external_session_end(request.session.get(EXTERNAL_SESSION_KEY))


def _permission_names(permissions: Any) -> set[str]:
    return {
        f"{app_label}.{codename}"
        for app_label, codename in permissions.values_list("content_type__app_label", "codename")
    }


def _before_after(action: str, current: set[str], changed: set[str]) -> tuple[set[str], set[str]]:
    """(before, after) of an m2m change, from the set as it is now and what the change touched."""
    if action == "post_add":
        return current - changed, current
    if action == "post_remove":
        return current | changed, current
    return current, set()  # pre_clear: everything goes


def _on_groups_changed(
    sender: Any, instance: Any, action: str, pk_set: set | None, reverse: bool, **kwargs: Any
) -> None:
    """Roles (Django groups) granted or removed anywhere, from either side of the relation."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    user_model = get_user_model()
    if reverse:  # group.user_set.add(...): each account is audited on its own
        users = (
            instance.user_set.all()
            if action == "pre_clear"
            else user_model.objects.filter(pk__in=pk_set or ())
        )
        for user in users:
            _audit_groups(user, action, {instance.name})
        return
    if action == "pre_clear":
        pk_set = set(instance.groups.values_list("pk", flat=True))
    _audit_groups(
        instance, action, set(Group.objects.filter(pk__in=pk_set or ()).values_list("name", flat=True))
    )


def _audit_groups(user: Any, action: str, names: set[str]) -> None:
    if not names:
        return
    current = set(user.groups.values_list("name", flat=True))
    before, after = _before_after(action, current, names)
    role_changes_audited(
        user=user, roles=sorted(names), granted=action == "post_add", before=before, after=after
    )


def _on_user_permissions_changed(
    sender: Any, instance: Any, action: str, pk_set: set | None, reverse: bool, **kwargs: Any
) -> None:
    """Direct permissions given to or taken from an account (the admin no longer offers them)."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if reverse:  # permission.user_set.add(...)
        users = (
            instance.user_set.all()
            if action == "pre_clear"
            else get_user_model().objects.filter(pk__in=pk_set or ())
        )
        for user in users:
            _audit_user_permissions(user, action, {f"{instance.content_type.app_label}.{instance.codename}"})
        return
    if action == "pre_clear":
        changed = _permission_names(instance.user_permissions.all())
    else:
        changed = _permission_names(Permission.objects.filter(pk__in=pk_set or ()))
    _audit_user_permissions(instance, action, changed)


def _audit_user_permissions(user: Any, action: str, changed: set[str]) -> None:
    if changed:
        before, after = _before_after(action, _permission_names(user.user_permissions.all()), changed)
        account_permissions_audited(user=user, before=before, after=after)


def _on_group_permissions_changed(
    sender: Any, instance: Any, action: str, pk_set: set | None, reverse: bool, **kwargs: Any
) -> None:
    """The permissions a role (Django group) carries, changed anywhere."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if reverse:  # permission.group_set.add(...)
        groups = (
            instance.group_set.all() if action == "pre_clear" else Group.objects.filter(pk__in=pk_set or ())
        )
        for group in groups:
            _audit_group_permissions(
                group, action, {f"{instance.content_type.app_label}.{instance.codename}"}
            )
        return
    if action == "pre_clear":
        changed = _permission_names(instance.permissions.all())
    else:
        changed = _permission_names(Permission.objects.filter(pk__in=pk_set or ()))
    _audit_group_permissions(instance, action, changed)


def _audit_group_permissions(group: Any, action: str, changed: set[str]) -> None:
    if changed:
        before, after = _before_after(action, _permission_names(group.permissions.all()), changed)
        role_permissions_audited(group=group, before=before, after=after)


def _on_user_saving(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    """Remember the audited fields as they were, to name before and after once saved."""
    instance._audited_before = None
    if instance.pk is None or (update_fields is not None and not set(update_fields) & WATCHED_FIELDS.keys()):
        return
    instance._audited_before = sender.objects.filter(pk=instance.pk).values(*WATCHED_FIELDS).first()


def _on_user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        account_created_audited(user=instance)
        return
    before = getattr(instance, "_audited_before", None)
    if before:
        after = {name: getattr(instance, name) for name in WATCHED_FIELDS}
        account_fields_audited(user=instance, before=before, after=after)
    instance._audited_before = None


def connect() -> None:
    user_model = get_user_model()
    user_login_failed.connect(_on_login_failed, dispatch_uid="group-admin-login-failed")
    user_logged_in.connect(_on_logged_in, dispatch_uid="group-admin-logged-in")
    user_logged_out.connect(_on_logged_out, dispatch_uid="group-admin-logged-out")
    m2m_changed.connect(
        _on_groups_changed, sender=user_model.groups.through, dispatch_uid="group-admin-roles-changed"
    )
    m2m_changed.connect(
        _on_user_permissions_changed,
        sender=user_model.user_permissions.through,
        dispatch_uid="group-admin-user-permissions-changed",
    )
    m2m_changed.connect(
        _on_group_permissions_changed,
        sender=Group.permissions.through,
        dispatch_uid="group-admin-group-permissions-changed",
    )
    pre_save.connect(_on_user_saving, sender=user_model, dispatch_uid="group-admin-account-saving")
    post_save.connect(_on_user_saved, sender=user_model, dispatch_uid="group-admin-account-saved")
