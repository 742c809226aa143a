"""On PostgreSQL, TRUNCATE of the audit log is refused, whoever asks, the owner included.

TRUNCATE fires no row triggers, so the append-only trigger (0010) never sees it; this
statement trigger does, also when the TRUNCATE cascades from another table. The login the
dashboard serves requests with has no TRUNCATE, DELETE or ALTER on the table anyway (see
groups_app/database_roles.py, applied after every migrate when DATABASE_APP_ROLE is set), so
it cannot switch either trigger off; the owner, which `migrate` runs as, still could, on
purpose, but an accidental `TRUNCATE` or `manage.py flush` no longer empties the log.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION groups_app_auditentry_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit entries cannot be deleted: TRUNCATE of % is refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS groups_app_auditentry_no_truncate ON groups_app_auditentry;
CREATE TRIGGER groups_app_auditentry_no_truncate
    BEFORE TRUNCATE ON groups_app_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION groups_app_auditentry_no_truncate();
"""

DROP = """
DROP TRIGGER IF EXISTS groups_app_auditentry_no_truncate ON groups_app_auditentry;
DROP FUNCTION IF EXISTS groups_app_auditentry_no_truncate();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("groups_app", "0022_audit_action_choices"),
    ]

    operations = [migrations.RunPython(install, remove)]
