#!/usr/bin/env bash
# Start Debian's PostgreSQL for the hub's tests (it refuses to run as root: pg_ctlcluster runs
# it as the postgres user) and make a role that may create one database per test. Prints the
# URL the tests read from TEST_POSTGRES_URL; the server also speaks TLS with a certificate of
# /var/lib/postgresql/kekeli-tls/ca.pem (TEST_POSTGRES_CA).
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
# TLS for the hub's `sslmode=verify-full&sslrootcert=…` test: a CA of our own and a server
# certificate for 127.0.0.1 (Debian's snakeoil one names the host and is no CA). The CA's path
# is what the tests read from TEST_POSTGRES_CA.
tls=/var/lib/postgresql/kekeli-tls
if [ ! -s "$tls/ca.pem" ]; then
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Kekeli test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$tls/ext.cnf"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$tls/ext.cnf" -out "$tls/server.crt" >/dev/null 2>&1
  chown -R postgres:postgres "$tls"
  chmod 600 "$tls/server.key" "$tls/ca.key"
fi
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<SQL >/dev/null
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$tls/server.crt';
ALTER SYSTEM SET ssl_key_file = '$tls/server.key';
SELECT pg_reload_conf();
SQL
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kekeli_test') THEN
    CREATE ROLE kekeli_test LOGIN CREATEDB PASSWORD 'kekeli_test';
  END IF;
END $$;
SQL
echo "postgres://kekeli_test:kekeli_test@127.0.0.1:5432/postgres"
