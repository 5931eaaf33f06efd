#!/usr/bin/env bash
# docpost's init step: run once before the Airflow components start (docker-compose's airflow-init
# service; the test bench's topology harness runs this same script). Idempotent: run it again after
# an upgrade. Reads only the environment every Airflow component gets, plus:
#   DOCPOST_SF1601_POOL_SLOTS   slots of the pool docpost_sf1601 (concurrent delivery tasks; 4)
#   DOCPOST_CONNECTIONS_FILE    Airflow connections to create (docker/connections.json: its
#                               ${VARIABLES} are filled in from the environment first)
set -euo pipefail

# 1. Airflow's metadata schema (Airflow holds its own database lock while it migrates).
airflow db migrate
# 2. The ledger's schema (Alembic, under a PostgreSQL advisory lock: see Ledger.upgrade).
docpost db upgrade
# 3. The pool every deliver task runs in: without it no deliver task is ever scheduled.
airflow pools set docpost_sf1601 "${DOCPOST_SF1601_POOL_SLOTS:-4}" "SF1601 deliveries (docpost)"
# 4. The connections, replaced when they exist (SF1601 with its certificate files, the mail relay).
if [ -n "${DOCPOST_CONNECTIONS_FILE:-}" ]; then
  rendered="$(mktemp --suffix=.json)"
  trap 'rm -f "$rendered"' EXIT
  python -c 'import os, sys; sys.stdout.write(os.path.expandvars(open(sys.argv[1]).read()))' \
    "$DOCPOST_CONNECTIONS_FILE" > "$rendered"
  airflow connections import --overwrite "$rendered"
fi
