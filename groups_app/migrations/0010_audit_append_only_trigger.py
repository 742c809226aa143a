"""On PostgreSQL, the database itself refuses to change or delete audit entries.

Only the two one-time steps the dashboard takes are let through: completing a pending entry,
and recording what reconciliation found for an unknown one; even then, what identifies the
attempt (when, who, what, where from) cannot change. A raw DELETE or UPDATE fails.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION groups_app_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries cannot be deleted (entry %)', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT (OLD.status = 'pending' OR (OLD.status = 'unknown' AND OLD.resolution = '')) THEN
        RAISE EXCEPTION 'audit entry % is complete and cannot be changed', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.id <> OLD.id
        OR NEW.created_at <> OLD.created_at
        OR NEW.action <> OLD.action
        OR NEW.actor_username <> OLD.actor_username
        OR NEW.actor_user_id IS DISTINCT FROM OLD.actor_user_id
        OR NEW.actor_email <> OLD.actor_email
        OR NEW.client_ip IS DISTINCT FROM OLD.client_ip
        OR NEW.user_agent <> OLD.user_agent
        OR NEW.request_id <> OLD.request_id
        OR NEW.inbound_request_id <> OLD.inbound_request_id
        OR NEW.submission_key IS DISTINCT FROM OLD.submission_key
    THEN
        RAISE EXCEPTION 'what identifies audit entry % cannot be changed', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS groups_app_auditentry_append_only ON groups_app_auditentry;
CREATE TRIGGER groups_app_auditentry_append_only
    BEFORE UPDATE OR DELETE ON groups_app_auditentry
    FOR EACH ROW EXECUTE FUNCTION groups_app_auditentry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS groups_app_auditentry_append_only ON groups_app_auditentry;
DROP FUNCTION IF EXISTS groups_app_auditentry_append_only();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("groups_app", "0009_actor_snapshot"),
    ]

    operations = [migrations.RunPython(install, remove)]
