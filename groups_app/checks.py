"""System checks of the deployment that need the database: `manage.py check --deploy --database default`."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import connections

from groups_app.database_roles import quote
from groups_app.models import AuditEntry

HINT = (
    "Serve requests and run the worker with DATABASE_URL naming a login role of its own (the one "
    "DATABASE_APP_ROLE names, which migrate grants only what the dashboard needs), and keep the "
    "owner for migrate. See README, Deploy."
)

WHO_AM_I = """
SELECT current_user, r.rolsuper, c.relowner::regrole::text, pg_has_role(current_user, c.relowner, 'MEMBER')
FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass(%s)
WHERE r.rolname = current_user
"""


@checks.register(checks.Tags.database, checks.Tags.security, deploy=True)
def check_audit_log_outlives_the_login(app_configs: Any = None, databases: Any = None, **kwargs: Any):
    """Warn when the dashboard logs in to PostgreSQL as a role that could empty or rewrite the audit log."""
    messages: list[checks.CheckMessage] = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute(WHO_AM_I, [quote(AuditEntry._meta.db_table)])
            user, is_superuser, owner, owns_audit_log = cursor.fetchone()
        if is_superuser:
            messages.append(
                checks.Warning(
                    f"The dashboard connects to the database {alias!r} as {user!r}, a superuser: "
                    "it could empty the audit log or switch off the triggers that keep it append-only.",
                    hint=HINT,
                    id="groups_app.W001",
                )
            )
        elif owns_audit_log:
            owning = (
                "owns the audit table"
                if owner == user
                else f"is a member of {owner}, the audit table's owner"
            )
            messages.append(
                checks.Warning(
                    f"The dashboard connects to the database {alias!r} as {user!r}, which {owning}: "
                    "it could empty the audit log or switch off the triggers that keep it append-only.",
                    hint=HINT,
                    id="groups_app.W002",
                )
            )
    return messages
