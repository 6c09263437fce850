#!/bin/sh
# Runs once, on the first start of an empty volume, as the owner (POSTGRES_USER). The app role
# may read and write rows and nothing more: no DDL, no ownership; `assistants migrate` (as the
# owner) creates the tables, and the default privileges below grant it DML on each of them.
# An existing volume: run the same statements (and GRANT ... ON ALL TABLES/SEQUENCES) by hand.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$POSTGRES_APP_PASSWORD" -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE assistants_app LOGIN PASSWORD :'app_password';
GRANT CONNECT ON DATABASE :"db" TO assistants_app;
GRANT USAGE ON SCHEMA public TO assistants_app;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO assistants_app;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO assistants_app;
SQL
