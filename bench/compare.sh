#!/usr/bin/env bash
# Two builds side by side: RecordEvents (SQLite), GetCustomer cache hits against the health
# check, and Checkout (SQLite), ECRM_BENCH_RUNS rounds (default 3) in which the two builds take
# turns on fresh databases, so a noisy machine weighs on both alike. Medians and ratios.
#   ECRM_BASE_BIN=/path/to/base/build/services bench/compare.sh [results.jsonl]
# ECRM_BENCH_DURATION (10s) per RPC load, ECRM_EVENTS_DURATION (30s) per RecordEvents run.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ECRM_BASE_BIN:?set ECRM_BASE_BIN to the services directory of the build to compare with}"
dur=${ECRM_BENCH_DURATION:-10s}
events_dur=${ECRM_EVENTS_DURATION:-30s}
runs=${ECRM_BENCH_RUNS:-3}
source bench/lib.sh
bench_setup ecrm-compare "${1:-}"
trap 'bench_cleanup; rm -rf "$work"' EXIT
load() { "$B/tools/loadgen/ecrm-load" --target="$1" --duration=$dur --warmup=2s --connections=2 --json "${@:2}"; }
secs=${dur%s}
carts=$(( (secs + 2) * 6000 ))

echo "# $(date -u +%FT%TZ) $(nproc) cores, base $ECRM_BASE_BIN vs $B/services, $runs rounds" >&2
start_redis "$work"
redis=redis://127.0.0.1:$REPLY
declare -A health hit events checkout
for round in $(seq "$runs"); do
  # Alternate which build goes first.
  order="base head"; [ $((round % 2)) -eq 0 ] && order="head base"
  for build in $order; do
    if [ $build = base ]; then bin=$ECRM_BASE_BIN; else bin=$B/services; fi
    rm -f "$work"/*.db*
    redis-cli -u "$redis" flushall >/dev/null
    start_service "$bin/ecrm-infostore" --database-url="sqlite://$work/infostore.db" --redis-url="$redis"
    target=$REPLY; pid=$SERVICE_PID
    health[$build]+="$(load "$target" --workload=health --rate=0 --concurrency=64 | json_field achieved_rate | cut -d. -f1) "
    hit[$build]+="$(load "$target" --workload=infostore.get --rate=0 --concurrency=64 | json_field achieved_rate | cut -d. -f1) "
    events[$build]+="$("$B/bench/ecrm-infostore-bench" --target="$target" --mode=events --duration=$events_dur | json_field median) "
    stop_service $pid
    start_service "$bin/ecrm-transaction" --database-url="sqlite://$work/transaction.db" --redis-url=
    target=$REPLY; pid=$SERVICE_PID
    checkout[$build]+="$(load "$target" --workload=transaction.checkout --rate=0 --concurrency=8 --population=$carts |
      json_field ok | awk -v s="$secs" '{ printf "%d", $1 / s }') "
    stop_service $pid
  done
done
for build in base head; do
  # shellcheck disable=SC2086
  { runs_json "${build}_health_saturation" "req/s" ${health[$build]}
    runs_json "${build}_get_hit_saturation" "req/s" ${hit[$build]}
    runs_json "${build}_record_events_sqlite" "events/s" ${events[$build]}
    runs_json "${build}_checkout_sqlite_8_clients" "orders/s" ${checkout[$build]}; } >/dev/null
done

cat <<SUMMARY

measurement (medians of $runs)               base                  head                  head/base
health check saturation                     $(med base_health_saturation) req/s        $(med head_health_saturation) req/s        $(ratio head_health_saturation base_health_saturation)
GetCustomer cache hit, saturation           $(med base_get_hit_saturation) ($(ratio base_get_hit_saturation base_health_saturation) of health)   $(med head_get_hit_saturation) ($(ratio head_get_hit_saturation head_health_saturation) of health)   $(ratio head_get_hit_saturation base_get_hit_saturation)
RecordEvents, SQLite, $events_dur             $(med base_record_events_sqlite) events/s      $(med head_record_events_sqlite) events/s      $(ratio head_record_events_sqlite base_record_events_sqlite)
Checkout, SQLite, 8 clients                 $(med base_checkout_sqlite_8_clients) orders/s       $(med head_checkout_sqlite_8_clients) orders/s       $(ratio head_checkout_sqlite_8_clients base_checkout_sqlite_8_clients)
SUMMARY
