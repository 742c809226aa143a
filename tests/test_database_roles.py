"""The audit log outlives the dashboard's own database login (PostgreSQL).

The test database is migrated as its owner; a login role of the app's is then given what
`migrate` gives DATABASE_APP_ROLE (the same function), and these tests log in as it with
psycopg: it completes and resolves entries once and does its ordinary work, and cannot
delete, truncate or alter the audit log, or rewrite an entry. The owner's TRUNCATE is
refused too.
"""

import secrets

import psycopg
import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone
from psycopg.types.json import Jsonb

from groups_app.database_roles import AUDIT_COMPLETION_FIELDS, grant_app_role
from groups_app.models import AccessRequest, AuditEntry
from groups_app.services.approvals.access_requests import access_request_deny
from groups_app.services.audit import audited, record_refused
from groups_app.services.errors import NotAllowed
from tests.factories import help_desk

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="database roles and grants are PostgreSQL's"
)

ROLE = "dbroles_app"
AUDIT = AuditEntry._meta.db_table
INSUFFICIENT_PRIVILEGE = "42501"


@pytest.fixture(scope="module")
def app_role(django_db_setup, django_db_blocker):
    """A login role of the app's in the test database, granted as migrate grants DATABASE_APP_ROLE.

    Made and granted outside any test's transaction (another login must see it), by the owner
    even when the suite itself runs as an app role; dropped afterwards."""
    password = secrets.token_urlsafe(24)
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("SET ROLE NONE")
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [ROLE])
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            cursor.execute(f"{verb} ROLE {ROLE} LOGIN PASSWORD %s", [password])
            grant_app_role(connection, ROLE)
            cursor.execute("RESET ROLE")
        database = connection.settings_dict
        yield {
            "host": database["HOST"] or None,
            "port": database["PORT"] or None,
            "dbname": database["NAME"],
            "user": ROLE,
            "password": password,
        }
        with connection.cursor() as cursor:
            cursor.execute("SET ROLE NONE")
            cursor.execute(f"DROP OWNED BY {ROLE}")
            cursor.execute(f"DROP ROLE {ROLE}")
            cursor.execute("RESET ROLE")


@pytest.fixture
def app(app_role):
    """A psycopg connection logged in as the app role, in a transaction rolled back at the end."""
    with psycopg.connect(**app_role) as app_connection:
        app_connection.execute("SELECT 1")  # opens the transaction; each statement below is a savepoint
        yield app_connection
        app_connection.rollback()


def insert(app, instance) -> int:
    """Write `instance` as the app role, with the INSERT Django sends for it; returns its id."""
    query = InsertQuery(type(instance))
    query.insert_values([f for f in instance._meta.local_concrete_fields if not f.primary_key], [instance])
    [(statement, params)] = query.get_compiler(connection=connection).as_sql()
    return app.execute(statement + " RETURNING id", params).fetchone()[0]


def insert_entry(app, **fields) -> int:
    """A pending entry (unless `fields` say otherwise), written as the app role."""
    entry = AuditEntry(actor_username="ada", action=AuditEntry.Action.GROUP_CREATE, summary="ada created X")
    for name, value in fields.items():
        setattr(entry, name, value)
    entry.search_text = entry.text_to_search()
    return insert(app, entry)


def access_request(**fields) -> AccessRequest:
    values = {"group_id": "sgg_1", "group_name": "Data", "email": "ada@example.com", "justification": "x"}
    return AccessRequest(**{**values, "requester_username": "ada", **fields})


def attempt(app, statement: str, params=()) -> psycopg.Error | None:
    """Run `statement` as the app role in a savepoint: the error PostgreSQL answered, or None."""
    try:
        with app.transaction():
            app.execute(statement, params)
    except psycopg.Error as error:
        return error
    return None


def stored(app, entry_id: int) -> tuple:
    return app.execute(
        "SELECT status, summary, actor_username, resolution FROM groups_app_auditentry WHERE id = %s",
        [entry_id],
    ).fetchone()


def completion_values() -> dict:
    """A value for every field that completing a pending entry writes (services/audit.complete)."""
    values = {
        "status": "succeeded",
        "completed_at": timezone.now(),
        "summary": "ada created X (done)",
        "details": Jsonb({"emails": ["a@example.com"]}),
        "group_id": "sgg_1",
        "review": None,
        "error": "",
        "upstream_status": 200,
        "search_text": "ada created x (done)",
    }
    assert set(values) == set(AUDIT_COMPLETION_FIELDS)
    return {AuditEntry._meta.get_field(name).column: value for name, value in values.items()}


def test_the_app_role_completes_a_pending_entry_once(app):
    entry_id = insert_entry(app)
    values = completion_values()
    assignments = ", ".join(f"{column} = %s" for column in values)
    complete = f"UPDATE groups_app_auditentry SET {assignments} WHERE id = %s AND status = 'pending'"  # noqa: S608

    assert app.execute(complete, [*values.values(), entry_id]).rowcount == 1
    again = attempt(
        app, "UPDATE groups_app_auditentry SET status = 'failed', error = 'x' WHERE id = %s", [entry_id]
    )

    assert again is not None and "is complete and cannot be changed" in str(again)
    assert stored(app, entry_id) == ("succeeded", "ada created X (done)", "ada", "")


def test_the_app_role_resolves_an_unknown_entry_once(app):
    entry_id = insert_entry(app, status=AuditEntry.Status.UNKNOWN)
    resolve = (
        "UPDATE groups_app_auditentry SET resolution = %s, resolved_at = now(), resolved_by = 'system', evidence = %s "
        "WHERE id = %s AND status = 'unknown' AND resolution = ''"
    )

    assert app.execute(resolve, ["applied", Jsonb({"read_at": "now"}), entry_id]).rowcount == 1
    again = attempt(
        app, "UPDATE groups_app_auditentry SET resolution = 'not_applied' WHERE id = %s", [entry_id]
    )

    assert again is not None and "is complete and cannot be changed" in str(again)
    assert stored(app, entry_id)[3] == "applied"


@pytest.mark.parametrize(
    "assignment",
    [
        "actor_username = 'eve'",
        "actor_user_id = 1",
        "created_at = now() - interval '1 year'",
        "action = 'members.add'",
        "client_ip = '10.0.0.1'",
        "request_id = 'forged'",
        "submission_key = NULL",
        "access_request_id = NULL",
    ],
)
def test_the_app_role_cannot_change_what_identifies_even_a_pending_entry(app, assignment):
    entry_id = insert_entry(app)

    error = attempt(app, f"UPDATE groups_app_auditentry SET {assignment} WHERE id = %s", [entry_id])  # noqa: S608

    assert error is not None and error.sqlstate == INSUFFICIENT_PRIVILEGE, error
    assert stored(app, entry_id) == ("pending", "ada created X", "ada", "")


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM groups_app_auditentry",
        "TRUNCATE groups_app_auditentry",
        "TRUNCATE groups_app_accessrequest CASCADE",
        "ALTER TABLE groups_app_auditentry DISABLE TRIGGER groups_app_auditentry_append_only",
        "ALTER TABLE groups_app_auditentry DISABLE TRIGGER ALL",
        "DROP TRIGGER groups_app_auditentry_no_truncate ON groups_app_auditentry",
        "CREATE OR REPLACE FUNCTION groups_app_auditentry_append_only() RETURNS trigger AS $$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql",
        "ALTER TABLE groups_app_auditentry RENAME TO old_audit",
        "DROP TABLE groups_app_auditentry CASCADE",
        "SET session_replication_role = replica",  # would silence every trigger
    ],
)
def test_the_app_role_cannot_delete_truncate_or_alter_the_audit_log(app, statement):
    entry_id = insert_entry(app, status=AuditEntry.Status.SUCCEEDED)

    error = attempt(app, statement)

    assert error is not None and error.sqlstate == INSUFFICIENT_PRIVILEGE, error
    assert stored(app, entry_id) == ("succeeded", "ada created X", "ada", "")


def test_the_app_role_has_every_privilege_it_needs_on_the_other_tables_and_no_more(app):
    tables = [
        table
        for (table,) in app.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'django_migrations'"
        ).fetchall()
    ]
    assert (
        AUDIT in tables and "django_tasks_database_dbtaskresult" in tables and "sandbox_usergroup" in tables
    )

    def holds(privilege: str) -> set[str]:
        return {
            table
            for table in tables
            if app.execute("SELECT has_table_privilege(%s, %s)", [table, privilege]).fetchone()[0]
        }

    assert holds("SELECT") == holds("INSERT") == set(tables)
    assert holds("UPDATE") == holds("DELETE") == set(tables) - {AUDIT}
    assert holds("TRUNCATE") == holds("TRIGGER") == holds("REFERENCES") == set()


def test_the_app_role_does_its_ordinary_work_on_access_requests(app):
    request_id = insert(app, access_request())
    entry_id = insert_entry(app, action=AuditEntry.Action.MEMBERS_ADD, access_request_id=request_id)
    withdrawn_id = insert(app, access_request(group_id="sgg_2", status=AccessRequest.Status.CANCELLED))

    provisioned = app.execute(
        "UPDATE groups_app_accessrequest SET status = 'provisioned', provisioning_entry_id = %s WHERE id = %s",
        [entry_id, request_id],
    )
    deleted = app.execute("DELETE FROM groups_app_accessrequest WHERE id = %s", [withdrawn_id])

    assert provisioned.rowcount == deleted.rowcount == 1
    assert app.execute("SELECT status FROM groups_app_accessrequest").fetchall() == [("provisioned",)]


@pytest.mark.django_db
def test_the_dashboards_own_audit_writes_pass_as_the_app_role(app_role):
    """What Django sends (pending, completed, failed, refused, resolved, an access request decided)
    fits in the column grants: a field added to a completion without its grant fails here."""
    hana = help_desk(username="hana")
    pending = AccessRequest.objects.create(
        group_id="sgg_1",
        group_name="Data",
        email="ada@example.com",
        requester_username="ada",
        justification="x",
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {ROLE}")

    with audited(actor=hana, action=AuditEntry.Action.GROUP_CREATE, summary="hana created X") as record:
        record.details["group"] = "X"
        record.group_id = "sgg_9"
    with (
        pytest.raises(NotAllowed),
        audited(actor=hana, action=AuditEntry.Action.GROUP_RENAME, summary="hana renamed X"),
    ):
        raise NotAllowed("Your role does not allow this change.")
    record_refused(actor=hana, action=AuditEntry.Action.GROUP_DELETE, summary="s", reason="no")
    access_request_deny(actor=hana, access_request_id=pending.pk, reason="Not needed.")
    unknown = AuditEntry.objects.create(
        actor_username="system", action="members.add", summary="s", status="unknown"
    )
    resolved = AuditEntry.objects.resolve(
        unknown.pk, resolution="applied", resolved_at=timezone.now(), resolved_by="system", evidence={"x": 1}
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == ROLE
    assert resolved == 1
    assert sorted(AuditEntry.objects.values_list("action", "status")) == [
        ("group.create", "succeeded"),
        ("group.delete", "refused"),
        ("group.rename", "refused"),
        ("members.add", "unknown"),
        ("request.deny", "succeeded"),
    ]
    assert AccessRequest.objects.get().status == AccessRequest.Status.DENIED


@pytest.mark.django_db
def test_truncate_of_the_audit_log_is_refused_even_to_its_owner():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE NONE")
        cursor.execute(
            "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = 'groups_app_auditentry'::regclass"
        )
        assert cursor.fetchone()[0]
    with audited(actor=None, action=AuditEntry.Action.GROUP_CREATE, summary="system created X"):
        pass
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE waits for no deferred check

    for statement in ("TRUNCATE groups_app_auditentry CASCADE", "TRUNCATE groups_app_accessrequest CASCADE"):
        with (
            pytest.raises(DatabaseError, match="TRUNCATE of groups_app_auditentry is refused"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)

    assert AuditEntry.objects.get().summary == "system created X"


@pytest.mark.django_db
def test_migrate_gives_the_app_role_back_exactly_its_grants(app_role, settings):
    """Re-granted after every migrate: a table without grants (as one a later migration adds) is
    covered, and a privilege given by hand on the audit log is taken away."""
    settings.DATABASE_APP_ROLE = ROLE
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE NONE")
        cursor.execute(f"REVOKE ALL ON groups_app_accessrequest FROM {ROLE}")
        cursor.execute(f"GRANT DELETE, TRUNCATE, UPDATE ON groups_app_auditentry TO {ROLE}")

    call_command("migrate", verbosity=0, interactive=False)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%(role)s, 'groups_app_accessrequest', 'INSERT'),"
            " has_table_privilege(%(role)s, 'groups_app_accessrequest', 'UPDATE'),"
            " has_table_privilege(%(role)s, 'groups_app_accessrequest', 'DELETE'),"
            " has_table_privilege(%(role)s, %(audit)s, 'DELETE, TRUNCATE'),"  # true if either
            " has_column_privilege(%(role)s, %(audit)s, 'actor_username', 'UPDATE'),"
            " has_column_privilege(%(role)s, %(audit)s, 'status', 'UPDATE')",
            {"role": ROLE, "audit": AUDIT},
        )
        assert cursor.fetchone() == (True, True, True, False, False, True)


@pytest.mark.django_db
def test_migrate_refuses_an_app_role_that_grants_would_not_restrict(app_role):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE NONE")
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()

    with pytest.raises(ImproperlyConfigured, match="does not exist"):
        grant_app_role(connection, "dbroles_nobody")
    with pytest.raises(ImproperlyConfigured, match="must be a role of its own"):
        grant_app_role(connection, owner)


@pytest.mark.django_db
def test_migrate_refuses_to_run_as_a_role_that_does_not_own_the_tables(app_role):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE NONE")
        cursor.execute("CREATE ROLE dbroles_stranger")
        cursor.execute("SET LOCAL ROLE dbroles_stranger")

    with pytest.raises(ImproperlyConfigured, match="migrate is running as 'dbroles_stranger'"):
        grant_app_role(connection, ROLE)


def deploy_warnings() -> list[str]:
    found = checks.run_checks(include_deployment_checks=True, databases=["default"])
    return [message.id for message in found if message.id.startswith("groups_app.")]


@pytest.mark.django_db
def test_check_deploy_warns_when_the_dashboard_logs_in_as_a_superuser_or_the_owner(app_role):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE NONE")
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        is_superuser = cursor.fetchone()[0]
    assert deploy_warnings() == (["groups_app.W001"] if is_superuser else ["groups_app.W002"])

    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE dbroles_owner")
        cursor.execute("ALTER TABLE groups_app_auditentry OWNER TO dbroles_owner")
        cursor.execute("SET LOCAL ROLE dbroles_owner")
    assert deploy_warnings() == ["groups_app.W002"]

    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {ROLE}")
    assert deploy_warnings() == []
