#!/usr/bin/env bash
# The docpost ledger lives beside Airflow's metadata database on the same server (run once by the
# postgres image on an empty data directory; the password comes from DOCPOST_DB_PASSWORD).
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v password="$DOCPOST_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE USER docpost WITH PASSWORD :'password';
CREATE DATABASE docpost OWNER docpost;
SQL
