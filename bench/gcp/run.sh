#!/usr/bin/env bash
# GCP billing export ingest against SQLite's own bulk loader on the same file, in the same run.
# Generates a synthetic export (29 columns as the shared sample) of ROWS rows (default 1,000,000) and its first
# 100,000 rows; for each size runs `gcp-ingest` (the gcp/billing pipeline through the executor, gcp.bq_etl
# source: file, SQLite warehouse write with replace_partitions, DQ check, commit) under /usr/bin/time -v for peak
# RSS, then `sqlite3 .import --csv` of the same file into :memory:, into a new database file, and into a new database file
# with 64 KiB pages (the page size of the warehouse's dataset files).
# With CONVERGENCE_BENCH_POSTGRES (an Npgsql connection string to a server where it may create databases, e.g. the
# one `bash tools/pg/test-cluster.sh url` prints), each size also runs the PostgreSQL leg: `gcp-ingest` with
# CONVERGENCE_WAREHOUSE=postgres into a fresh database, then `psql \copy` of the same file into a fresh text table.
# Usage: bash bench/gcp/run.sh [rows]        (needs sqlite3 for the comparison: apt-get install -y sqlite3; psql for PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS="${1:-1000000}"
command -v sqlite3 >/dev/null || { echo "sqlite3 is not installed: apt-get install -y sqlite3" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is not installed: apt-get install -y time" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
dotnet build -c Release bench/Convergence.Bench --nologo -v q >/dev/null
BENCH=(dotnet bench/Convergence.Bench/bin/Release/net10.0/Convergence.Bench.dll)
mkdir -p "$WORK/imports"
BIG="$WORK/imports/gcp_${ROWS}.csv"
SMALL="$WORK/imports/gcp_100000.csv"
"${BENCH[@]}" gcp-generate "$ROWS" "$BIG"
head -n 100001 "$BIG" >"$SMALL"

PG="${CONVERGENCE_BENCH_POSTGRES:-}"
export PGOPTIONS="-c client_min_messages=warning"
# The Npgsql connection string as libpq keywords, for psql (database replaced by the first argument).
libpq() { python3 - "$PG" "$1" <<'PY'
import sys
keys = {"host": "host", "server": "host", "port": "port", "username": "user", "user id": "user", "password": "password"}
parts = dict(p.split("=", 1) for p in sys.argv[1].split(";") if "=" in p)
out = [f"{keys[k.strip().lower()]}={v.strip()}" for k, v in parts.items() if k.strip().lower() in keys]
print(" ".join(out + [f"dbname={sys.argv[2]}"]))
PY
}
npgsql() { python3 -c "import sys; print(';'.join([p for p in sys.argv[1].split(';') if p and not p.lower().startswith('database=')] + ['Database=' + sys.argv[2]]))" "$PG" "$1"; }

seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$@"; }

printf '\n%-10s %-26s %10s %10s %10s\n' rows loader seconds rows/s peak_RSS_MB
for FILE in "$SMALL" "$BIG"; do
  N=$(( $(wc -l <"$FILE") - 1 ))
  /usr/bin/time -v "${BENCH[@]}" gcp-ingest "$FILE" >"$WORK/ingest.out" 2>"$WORK/ingest.time"
  OURS=$(sed -n 's/^ROWS_PER_SECOND=//p' "$WORK/ingest.out")
  RSS=$(( $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/ingest.time") / 1024 ))
  printf '%-10s %-26s %10s %10s %10s\n' "$N" "convergence gcp-ingest" "$(python3 -c "print(f'{$N/$OURS:.2f}')")" "$OURS" "$RSS"

  # The third: a new file with 64 KiB pages, the page size of the warehouse's dataset files (SQLite's default is 4 KiB).
  for NATIVE_RUN in ":memory:|4096" "$WORK/native.sqlite|4096" "$WORK/native.sqlite|65536"; do
    TARGET=${NATIVE_RUN%|*}
    PAGE=${NATIVE_RUN#*|}
    rm -f "$WORK/native.sqlite"
    START=$(date +%s.%N)
    /usr/bin/time -v sqlite3 "$TARGET" "PRAGMA page_size=$PAGE" ".import --csv $FILE t" "SELECT count(*) FROM t;" >"$WORK/native.out" 2>"$WORK/native.time"
    END=$(date +%s.%N)
    [ "$(cat "$WORK/native.out")" = "$N" ] || { echo "sqlite3 imported $(cat "$WORK/native.out") rows, expected $N" >&2; exit 1; }
    S=$(seconds "$START" "$END")
    NRSS=$(( $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/native.time") / 1024 ))
    NATIVE=$(python3 -c "print(f'{$N/$S:.0f}')")
    LABEL="sqlite3 .import ${TARGET##*/}"
    [ "$PAGE" = 4096 ] || LABEL="$LABEL $((PAGE / 1024))k"
    printf '%-10s %-26s %10s %10s %10s   ratio %s\n' "$N" "$LABEL" "$S" "$NATIVE" "$NRSS" "$(python3 -c "print(f'{$OURS/$NATIVE:.2f}')")"
  done
  sed -n 's/^gcp-ingest /  /p' "$WORK/ingest.out"

  if [ -n "$PG" ]; then
    ADMIN=$(libpq postgres)
    for DB in convergence_bench_wh convergence_bench_copy; do
      psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
    done
    /usr/bin/time -v "${BENCH[@]}" gcp-ingest "$FILE" "$(npgsql convergence_bench_wh)" >"$WORK/ingest.out" 2>"$WORK/ingest.time"
    PGOURS=$(sed -n 's/^ROWS_PER_SECOND=//p' "$WORK/ingest.out")
    RSS=$(( $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/ingest.time") / 1024 ))
    printf '%-10s %-26s %10s %10s %10s\n' "$N" "convergence postgres" "$(python3 -c "print(f'{$N/$PGOURS:.2f}')")" "$PGOURS" "$RSS"

    COPYDB=$(libpq convergence_bench_copy)
    COLUMNS=$(head -n 1 "$FILE" | python3 -c "import sys, csv; print(', '.join('\"' + c + '\" text' for c in next(csv.reader(sys.stdin))))")
    psql "$COPYDB" -qc "CREATE TABLE t ($COLUMNS)"
    START=$(date +%s.%N)
    psql "$COPYDB" -qc "\\copy t FROM '$FILE' WITH (FORMAT csv, HEADER true)" >/dev/null
    END=$(date +%s.%N)
    COUNT=$(psql "$COPYDB" -tAc "SELECT count(*) FROM t")
    [ "$COUNT" = "$N" ] || { echo "psql \\copy loaded $COUNT rows, expected $N" >&2; exit 1; }
    S=$(seconds "$START" "$END")
    NATIVE=$(python3 -c "print(f'{$N/$S:.0f}')")
    printf '%-10s %-26s %10s %10s %10s   ratio %s\n' "$N" "psql \\copy (text table)" "$S" "$NATIVE" "-" "$(python3 -c "print(f'{$PGOURS/$NATIVE:.2f}')")"
    sed -n 's/^gcp-ingest /  /p' "$WORK/ingest.out"
    for DB in convergence_bench_wh convergence_bench_copy; do
      psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
    done
  fi
done
echo "goal: convergence >= 0.7x sqlite3 rows/s; peak RSS <= 300 MB and flat from 100k to 1M rows"
