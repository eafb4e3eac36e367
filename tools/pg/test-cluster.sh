#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on a loopback port for the test suite and benchmarks.
#   tools/pg/test-cluster.sh start   -> initdb (as the postgres user) into $PGTEST_DIR, start on $PGTEST_PORT
#   tools/pg/test-cluster.sh stop    -> stop it and delete its folder
#   tools/pg/test-cluster.sh url     -> the Npgsql connection string
# Needs Debian's postgresql package (the server binaries under /usr/lib/postgresql/<version>/bin).
set -euo pipefail

PORT="${PGTEST_PORT:-55432}"
DIR="${PGTEST_DIR:-/tmp/convergence-pg-$PORT}"
DB="${PGTEST_DB:-convergence_test}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    [ -x "$BIN/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
    if as_postgres "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
      echo "already running on 127.0.0.1:$PORT"; exit 0
    fi
    rm -rf "$DIR"; mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
    as_postgres "$BIN/initdb" -D "$DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    # Loopback only, socket in the cluster folder; fsync off: a test cluster is thrown away anyway.
    as_postgres "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -o \
      "-p $PORT -c listen_addresses=127.0.0.1 -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
    as_postgres "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE $DB" >/dev/null
    echo "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, database $DB"
    ;;
  stop)
    if [ -d "$DIR" ]; then
      as_postgres "$BIN/pg_ctl" -D "$DIR" -m immediate stop >/dev/null 2>&1 || true
      rm -rf "$DIR"
    fi
    ;;
  url)
    echo "Host=127.0.0.1;Port=$PORT;Username=postgres;Database=$DB;Pooling=true;Maximum Pool Size=100"
    ;;
  *)
    echo "usage: $0 start|stop|url" >&2; exit 2
    ;;
esac
