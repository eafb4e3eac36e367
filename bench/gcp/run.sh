#!/usr/bin/env bash
# GCP billing export ingest against SQLite's own bulk loader on the same file, in the same run.
# Generates a synthetic export (29 columns as the shared sample) of ROWS rows (default 1,000,000) and its first
# 100,000 rows; for each size runs `gcp-ingest` (the gcp/billing pipeline through the executor, gcp.bq_etl
# source: file, SQLite warehouse write with replace_partitions, DQ check, commit) under /usr/bin/time -v for peak
# RSS, then `sqlite3 .import --csv` of the same file into :memory: and into a new database file.
# Usage: bash bench/gcp/run.sh [rows]        (needs sqlite3 for the comparison: apt-get install -y sqlite3)
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

seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$@"; }

printf '\n%-10s %-26s %10s %10s %10s\n' rows loader seconds rows/s peak_RSS_MB
for FILE in "$SMALL" "$BIG"; do
  N=$(( $(wc -l <"$FILE") - 1 ))
  /usr/bin/time -v "${BENCH[@]}" gcp-ingest "$FILE" >"$WORK/ingest.out" 2>"$WORK/ingest.time"
  OURS=$(sed -n 's/^ROWS_PER_SECOND=//p' "$WORK/ingest.out")
  RSS=$(( $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/ingest.time") / 1024 ))
  printf '%-10s %-26s %10s %10s %10s\n' "$N" "convergence gcp-ingest" "$(python3 -c "print(f'{$N/$OURS:.2f}')")" "$OURS" "$RSS"

  for TARGET in ":memory:" "$WORK/native.sqlite"; do
    rm -f "$WORK/native.sqlite"
    START=$(date +%s.%N)
    /usr/bin/time -v sqlite3 "$TARGET" ".import --csv $FILE t" "SELECT count(*) FROM t;" >"$WORK/native.out" 2>"$WORK/native.time"
    END=$(date +%s.%N)
    [ "$(cat "$WORK/native.out")" = "$N" ] || { echo "sqlite3 imported $(cat "$WORK/native.out") rows, expected $N" >&2; exit 1; }
    S=$(seconds "$START" "$END")
    NRSS=$(( $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/native.time") / 1024 ))
    NATIVE=$(python3 -c "print(f'{$N/$S:.0f}')")
    printf '%-10s %-26s %10s %10s %10s   ratio %s\n' "$N" "sqlite3 .import ${TARGET##*/}" "$S" "$NATIVE" "$NRSS" "$(python3 -c "print(f'{$OURS/$NATIVE:.2f}')")"
  done
  sed -n 's/^gcp-ingest /  /p' "$WORK/ingest.out"
done
echo "goal: convergence >= 0.7x sqlite3 rows/s; peak RSS <= 300 MB and flat from 100k to 1M rows"
