"""The dashboard's own accounts: role grants and removals, password resets — each audited."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from groups_app.models import AuditEntry
from groups_app.services.audit import SYSTEM, actor_name, origin_var, record_completed
from groups_app.services.audit_details import details_for

Action = AuditEntry.Action

# Who changes roles when no person does: the identity provider's groups claim at sign-in.
_role_source: contextvars.ContextVar[str] = contextvars.ContextVar("role_source", default="")


@contextmanager
def roles_changed_by(source: str) -> Iterator[None]:
    """Attribute the role changes inside the block to `source` (e.g. "the identity provider")."""
    token = _role_source.set(source)
    try:
        yield
    finally:
        _role_source.reset(token)


def role_changes_audited(*, user: Any, roles: list[str], granted: bool) -> AuditEntry | None:
    """Record roles granted to or removed from a dashboard account: in the Django admin (any web
    request) or by single sign-on. Changes made outside the app (a shell, a data migration) are
    not its to record."""
    origin = origin_var.get()
    if origin is None and not _role_source.get():
        return None
    actor = origin.user if origin is not None and getattr(origin.user, "is_authenticated", False) else SYSTEM
    source = _role_source.get()
    verb = "granted" if granted else "removed"
    preposition = "to" if granted else "from"
    summary = f"{actor_name(actor)} {verb} {', '.join(sorted(roles))} {preposition} {user.get_username()}"
    if source:
        summary += f" ({source})"
    return record_completed(
        actor=actor,
        action=Action.ACCOUNT_ROLE_GRANT if granted else Action.ACCOUNT_ROLE_REMOVE,
        summary=summary,
        details=details_for(
            Action.ACCOUNT_ROLE_GRANT if granted else Action.ACCOUNT_ROLE_REMOVE,
            account=user.get_username(),
            roles=sorted(roles),
            source=source or "the dashboard's accounts",
        ),
    )


def password_reset_requested(*, actor: Any, email: str) -> AuditEntry:
    """Record a password reset request (mailed only if an active account has that email)."""
    return record_completed(
        actor=actor,
        action=Action.ACCOUNT_PASSWORD_RESET,
        summary=f"Password reset requested for {email[:254]}",
        details=details_for(Action.ACCOUNT_PASSWORD_RESET, email=email[:254]),
    )
