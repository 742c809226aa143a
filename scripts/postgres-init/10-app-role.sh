#!/usr/bin/env bash
# The dashboard's own database login, for the compose database (README, Deploy). The postgres
# image runs this once, on its first start (an empty volume), as POSTGRES_USER, which owns the
# database and runs migrate; to add the login to an existing volume, or to change its password
# after changing POSTGRES_APP_PASSWORD, run it again:
#   docker compose exec db /docker-entrypoint-initdb.d/10-app-role.sh
# It creates the role (or sets its password) and lets it connect. What it may do on the tables,
# migrate grants (DATABASE_APP_ROLE); it never owns anything.
set -euo pipefail

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_role="${POSTGRES_APP_USER:?}" -v app_password="${POSTGRES_APP_PASSWORD:?}" <<'SQL'
SELECT format(
    CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role')
        THEN 'ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L'
        ELSE 'CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L'
    END,
    :'app_role', :'app_password') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'app_role') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app_role";
SQL
