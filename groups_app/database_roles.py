"""What the dashboard's own database login may do, on PostgreSQL.

`migrate` runs as the role that owns the tables; the web and worker processes log in as
another role, named by the DATABASE_APP_ROLE setting, which owns nothing. After every
`migrate` (a `post_migrate` receiver, so that tables added by later migrations are covered
and a changed DATABASE_APP_ROLE takes effect at the next deploy) that role is given:

- on every table of an installed model: SELECT, INSERT, UPDATE and DELETE;
- on the audit log: SELECT and INSERT, and UPDATE of exactly the columns that completing a
  pending entry and resolving an unknown one write. Never DELETE, TRUNCATE or ALTER, so
  the append-only trigger (migration 0010) and the TRUNCATE trigger (0016) cannot be
  switched off by the login that serves requests;
- on the sequences of those tables: USAGE and SELECT; on `django_migrations`: SELECT.

Anything else it was given on those tables is revoked, all in one transaction.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, transaction

AUDIT_MODEL = ("groups_app", "AuditEntry")

# What `AuditQuerySet.complete` is given (by services/audit.complete) when a pending entry
# gets its outcome, and `AuditQuerySet.resolve` (by services/reconcile) when reading back
# resolves an unknown one. The append-only trigger decides when these may change (pending,
# or unknown and unresolved), and that who, when and what was attempted never do.
AUDIT_COMPLETION_FIELDS = (
    "status",
    "completed_at",
    "summary",
    "details",
    "group_id",
    "review",
    "error",
    "upstream_status",
    "search_text",
)
AUDIT_RESOLUTION_FIELDS = ("resolution", "resolved_at", "resolved_by", "evidence")

MIGRATIONS_TABLE = "django_migrations"


def quote(identifier: str) -> str:
    """An identifier quoted as PostgreSQL reads it (Django's quote_name leaves inner quotes alone)."""
    return '"' + identifier.replace('"', '""') + '"'


def audit_table(apps: Any = global_apps) -> str | None:
    """The audit log's table, if `apps` has it (not after `migrate groups_app zero`)."""
    try:
        return apps.get_model(*AUDIT_MODEL)._meta.db_table
    except LookupError:
        return None


def audit_update_columns(apps: Any = global_apps) -> list[str]:
    """The audit log's columns the app role may UPDATE."""
    options = apps.get_model(*AUDIT_MODEL)._meta
    return [options.get_field(name).column for name in (*AUDIT_COMPLETION_FIELDS, *AUDIT_RESOLUTION_FIELDS)]


def grant_statements(*, role: str, tables: list[str], sequences: list[str], apps: Any) -> list[str]:
    """The SQL that leaves `role` with exactly what the dashboard needs on `tables` (which exist)."""
    audit = audit_table(apps)
    grantee = quote(role)
    others = [table for table in tables if table not in (audit, MIGRATIONS_TABLE)]
    statements = [f"REVOKE ALL ON TABLE {', '.join(map(quote, tables))} FROM {grantee}"]
    if others:
        statements.append(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {', '.join(map(quote, others))} TO {grantee}"
        )
    if MIGRATIONS_TABLE in tables:
        statements.append(f"GRANT SELECT ON TABLE {quote(MIGRATIONS_TABLE)} TO {grantee}")
    if audit in tables:
        columns = ", ".join(map(quote, audit_update_columns(apps)))
        statements += [
            f"GRANT SELECT, INSERT ON TABLE {quote(audit)} TO {grantee}",
            f"GRANT UPDATE ({columns}) ON TABLE {quote(audit)} TO {grantee}",
        ]
    if sequences:
        statements.append(f"GRANT USAGE, SELECT ON SEQUENCE {', '.join(map(quote, sequences))} TO {grantee}")
    return statements


def grant_app_role(connection: Any, role: str, apps: Any = global_apps) -> None:
    """Give `role` what the dashboard needs, and no more (see the module's docstring); PostgreSQL only.

    Raises:
        ImproperlyConfigured: the role does not exist, or is the one migrating, a member of it,
            or a superuser (grants would then restrict nothing).
    """
    if connection.vendor != "postgresql":
        return
    audit = audit_table(apps)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        check_app_role(cursor, role)
        existing = set(connection.introspection.table_names(cursor))
        model_tables = {
            model._meta.db_table
            for model in apps.get_models(include_auto_created=True)
            if model._meta.managed and not model._meta.proxy
        }
        tables = sorted((model_tables | {MIGRATIONS_TABLE}) & existing)
        if not tables:
            return
        sequences = sorted(
            sequence["name"]
            for table in tables
            if table != MIGRATIONS_TABLE
            for sequence in connection.introspection.get_sequences(cursor, table)
        )
        if audit in tables:
            check_migrating_role_owns(cursor, audit)
        for statement in grant_statements(role=role, tables=tables, sequences=sequences, apps=apps):
            cursor.execute(statement)


def check_app_role(cursor: Any, role: str) -> None:
    """Refuse a role that is missing, or that grants would not restrict.

    Raises:
        ImproperlyConfigured: what is wrong with the role, and what to do.
    """
    cursor.execute(
        "SELECT rolsuper, pg_has_role(%s, current_user, 'MEMBER') FROM pg_roles WHERE rolname = %s",
        [role, role],
    )
    row = cursor.fetchone()
    if row is None:
        raise ImproperlyConfigured(
            f"DATABASE_APP_ROLE names the PostgreSQL role {role!r}, which does not exist. Create it "
            "(CREATE ROLE … LOGIN PASSWORD …; see README, Deploy), then run migrate again."
        )
    is_superuser, is_member_of_migrating_role = row
    if is_superuser or is_member_of_migrating_role:
        raise ImproperlyConfigured(
            f"DATABASE_APP_ROLE names {role!r}, which is "
            + ("a superuser" if is_superuser else "the role running migrate, or a member of it")
            + ": the dashboard's login must be a role of its own that owns nothing, so that it "
            "cannot change the audit log. Run migrate as the owner of the tables (see README, Deploy)."
        )


def check_migrating_role_owns(cursor: Any, table: str) -> None:
    """Refuse to grant from a role that does not own the tables (its GRANTs would do nothing).

    Raises:
        ImproperlyConfigured: migrate is not running as the owner.
    """
    cursor.execute(
        "SELECT c.relowner::regrole::text, pg_has_role(current_user, c.relowner, 'USAGE'), current_user "
        "FROM pg_class c WHERE c.oid = to_regclass(%s)",
        [quote(table)],
    )
    owner, owns, current = cursor.fetchone()
    if not owns:
        raise ImproperlyConfigured(
            f"migrate is running as {current!r}, but the tables belong to {owner}: run migrate with "
            "DATABASE_URL naming the owner (see README, Deploy), never as DATABASE_APP_ROLE."
        )


def grant_after_migrate(*, using: str = DEFAULT_DB_ALIAS, apps: Any = global_apps, **kwargs: Any) -> None:
    """post_migrate receiver: re-grant DATABASE_APP_ROLE after every migrate (nothing when unset)."""
    if settings.DATABASE_APP_ROLE:
        grant_app_role(connections[using], settings.DATABASE_APP_ROLE, apps)
