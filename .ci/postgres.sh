#!/usr/bin/env bash
# Start Debian's PostgreSQL for the hub's tests (it refuses to run as root: pg_ctlcluster runs
# it as the postgres user) and make a role that may create one database per test. Prints the
# URL the tests read from TEST_POSTGRES_URL.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q "^$ver main"; then
  pg_createcluster "$ver" main >/dev/null 2>&1
fi
pg_ctlcluster "$ver" main start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 1
done
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kekeli_test') THEN
    CREATE ROLE kekeli_test LOGIN CREATEDB PASSWORD 'kekeli_test';
  END IF;
END $$;
SQL
echo "postgres://kekeli_test:kekeli_test@127.0.0.1:5432/postgres"
