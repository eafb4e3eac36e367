#!/usr/bin/env bash
# Authenticated GET /api/v1/organizations/{org} vs GET /health, same service, same run.
# wrk with 64 connections on loopback; the two endpoints alternate for ROUNDS rounds (default 3) so drift in
# machine load hits both alike; prints the median throughput, p50/p99 of each and the ratios.
# Usage: bash bench/http/run.sh [duration_seconds] [rounds]   (needs wrk: apt-get install -y wrk)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-10}"
ROUNDS="${2:-3}"
PORT="${BENCH_PORT:-5187}"
CONNECTIONS=64
THREADS=2
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
dotnet publish src/Convergence.Api -c Release -o "$WORK/app" --nologo -v q >/dev/null

ROOT_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# The rate limiter stays on (partitioned per org) with limits above what wrk can reach, so its cost is measured.
# Per-request access logs go to a file, as a production deployment would ship them.
# BENCH_EXTRA_ENV adds settings for an experiment, e.g. BENCH_EXTRA_ENV="RATE_LIMIT_ENABLED=false".
# shellcheck disable=SC2086
env CA_ROOT_API_KEY="$ROOT_KEY" CONVERGENCE_DATA_DIR="$WORK/data" ASPNETCORE_URLS="http://127.0.0.1:$PORT" \
  RATE_LIMIT_REQUESTS_PER_MINUTE=1000000000 RATE_LIMIT_REQUESTS_PER_HOUR=1000000000 ${BENCH_EXTRA_ENV:-} \
  dotnet "$WORK/app/Convergence.Api.dll" >"$WORK/service.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/admin/bootstrap" -H "X-CA-Root-Key: $ROOT_KEY" >/dev/null
ORG_KEY="$(curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/organizations/onboard" -H "X-CA-Root-Key: $ROOT_KEY" \
  -H 'Content-Type: application/json' \
  -d '{"org_slug":"bench_org","company_name":"Bench","admin_email":"bench@example.com","subscription_plan":"SCALE"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"

cat >"$WORK/org.lua" <<LUA
wrk.headers["X-API-Key"] = "$ORG_KEY"
LUA

run() { # name, round, path, extra args
  local name="$1" round="$2" path="$3"; shift 3
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "http://127.0.0.1:$PORT$path" >"$WORK/$name.$round.txt"
}
# Warm-up: JIT tiering and caches settle before anything is measured.
wrk -t"$THREADS" -c"$CONNECTIONS" -d5s "http://127.0.0.1:$PORT/health" >/dev/null
wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s "$WORK/org.lua" "http://127.0.0.1:$PORT/api/v1/organizations/bench_org" >/dev/null
for round in $(seq 1 "$ROUNDS"); do
  run health "$round" /health
  run org "$round" /api/v1/organizations/bench_org -s "$WORK/org.lua"
done

python3 - "$WORK" "$ROUNDS" <<'PY'
import re, statistics, sys
def parse_one(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, lat(50), lat(99), int(errors.group(1)) if errors else 0
def parse(name):
    runs = [parse_one(f"{sys.argv[1]}/{name}.{r}.txt") for r in range(1, int(sys.argv[2]) + 1)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(3)) + (sum(r[3] for r in runs),)
h, o = parse("health"), parse("org")
print(f"medians of {sys.argv[2]} alternating rounds")
print(f"{'endpoint':<38}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
print(f"{'GET /health':<38}{h[0]:>10.0f}{h[1]:>9.2f}{h[2]:>9.2f}{h[3]:>9}")
print(f"{'GET /api/v1/organizations/{org} (key)':<38}{o[0]:>10.0f}{o[1]:>9.2f}{o[2]:>9.2f}{o[3]:>9}")
print(f"throughput ratio org/health = {o[0]/h[0]:.2f} (goal >= 0.90); p99 ratio = {o[2]/h[2]:.2f} (goal <= 1.50)")
if h[3] or o[3]:
    sys.exit("non-2xx responses during the run: the figures are not valid")
PY
