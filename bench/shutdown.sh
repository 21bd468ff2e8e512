#!/usr/bin/env bash
# Graceful shutdown (issue 12) as clients see it, with ecrm-shutdown-bench:
#  - ECRM_SHUTDOWN_ROUNDS (50) SIGTERMs of ecrm-transaction under AddCartItem load (300
#    calls/s from 4 clients, one connection each, at most 16 calls outstanding per client):
#    every call's outcome is counted (no CANCELLED is the goal), and each client's cart, read
#    back after a restart, must hold exactly the calls answered OK; and the time to exit;
#  - the time from SIGTERM to exit with idle clients connected (one call each, then nothing):
#    C++ channels and Python grpcio (Debian: python3-grpcio), 1 and 4 of each,
#    ECRM_SHUTDOWN_IDLE_ROUNDS (10) times each.
# ECRM_SHUTDOWN_BASELINE=/path/to/an/older/ecrm-transaction measures that binary too, in the
# same run (bench lines "shutdown.baseline.…").
#   bench/shutdown.sh [results.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ECRM_SHUTDOWN_ROUNDS:-50}
idle_rounds=${ECRM_SHUTDOWN_IDLE_ROUNDS:-10}
source bench/lib.sh
bench_setup ecrm-shutdown "${1:-}"
trap 'bench_cleanup; rm -rf "$work"' EXIT
python=/usr/bin/python3
clients=(cpp)
if "$python" -c 'import grpc' 2>/dev/null; then clients+=(python); else echo "# no python3-grpcio: C++ clients only" >&2; fi

servers=("current=$B/services/ecrm-transaction")
[ -n "${ECRM_SHUTDOWN_BASELINE:-}" ] && servers+=("baseline=$ECRM_SHUTDOWN_BASELINE")
echo "# $(date -u +%FT%TZ) $(nproc) cores; $rounds loaded and $idle_rounds idle SIGTERMs per case; results in $out" >&2
for entry in "${servers[@]}"; do
  label=${entry%%=*}
  server=${entry#*=}
  name() { if [ "$label" = current ]; then cat; else sed 's/"bench":"shutdown\./"bench":"shutdown.baseline./'; fi; }
  echo "# $label: $server" >&2
  "$B/bench/ecrm-shutdown-bench" --server="$server" --mode=load --rounds="$rounds" | name |
    while read -r line; do emit "$line"; done || true  # exits 3 when a call was CANCELLED
  for client in "${clients[@]}"; do
    for n in 1 4; do
      "$B/bench/ecrm-shutdown-bench" --server="$server" --mode=idle --client="$client" --clients="$n" \
        --rounds="$idle_rounds" --python="$python" | name | while read -r line; do emit "$line"; done
    done
  done
done
