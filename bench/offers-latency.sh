#!/usr/bin/env bash
# DecideOffers latency (issue 15), measured ECRM_BENCH_RUNS times (default 3) with the gRPC health
# baseline of the same ecrm-personalisation in the same run. Starts its own Redis,
# ecrm-infostore and ecrm-personalisation (SQLite, or PostgreSQL with
# ECRM_OFFERS_BACKENDS="sqlite postgres") on free loopback ports; seeds ECRM_OFFERS_CUSTOMERS
# (10,000) customers through the information store (ecrm-segmentation-latency-bench --mode=seed:
# profile, consents, 2 events each), lets ecrm-load create 200 active offers (rules over
# profile, consents, attributes and behaviour; placements, channels, windows, caps, budgets),
# then per run, open loop at 2,000 QPS for ECRM_BENCH_DURATION (10s):
#   - health p99 (baseline);
#   - DecideOffers p99, preview (record_impression false: reads the caps' counts);
#   - DecideOffers p99 recording impressions (one write transaction per decision).
# The engine keeps local copies of hot profiles (--redis-local-copies=ECRM_OFFERS_CUSTOMERS * 2).
#   bench/offers-latency.sh [results.jsonl]
# ECRM_BENCH_LOCK=/tmp/ecrm-build.lock: build, and hold that lock during each run's measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${ECRM_BENCH_DURATION:-10s}
runs=${ECRM_BENCH_RUNS:-3}
customers=${ECRM_OFFERS_CUSTOMERS:-10000}
backends=${ECRM_OFFERS_BACKENDS:-sqlite}
lockfile=${ECRM_BENCH_LOCK:-}
source bench/lib.sh
hold() { [ -z "$lockfile" ] || { exec 9>>"$lockfile"; flock 9; }; }
release() { [ -z "$lockfile" ] || flock -u 9; }
hold
bench_setup ecrm-offers "${1:-}"
release
trap 'bench_cleanup; rm -rf "$work"' EXIT
load() { "$B/tools/loadgen/ecrm-load" --target="$1" --duration=$dur --warmup=2s --connections=2 --json "${@:2}"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $customers customers," \
  "200 offers, $dur x $runs runs; results in $out" >&2
start_redis "$work"
redis=redis://127.0.0.1:$REPLY
[[ " $backends " == *" postgres "* ]] && { start_postgres "$work"; pg_port=$REPLY; }

for backend in $backends; do
  if [ "$backend" = sqlite ]; then
    store_url="sqlite://$work/infostore.db"
    engine_url="sqlite://$work/personalisation.db"
  else
    "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres infostore
    "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres personalisation
    store_url="postgresql://postgres@127.0.0.1:$pg_port/infostore"
    engine_url="postgresql://postgres@127.0.0.1:$pg_port/personalisation"
  fi
  start_service "$B/services/ecrm-infostore" --database-url="$store_url" --redis-url="$redis"
  infostore=$REPLY
  store_pid=$SERVICE_PID
  start_service "$B/services/ecrm-personalisation" --database-url="$engine_url" --redis-url="$redis" \
    --redis-local-copies=$((customers * 2)) --infostore-address="$infostore"
  engine=$REPLY
  engine_pid=$SERVICE_PID
  "$B/bench/ecrm-segmentation-latency-bench" --mode=seed --infostore="$infostore" --customers="$customers" \
    --events-per-customer=2 --ids-file="$work/ids.txt" >&2
  # Creates the 200 offers, and reads every customer once (the information store fills the cache).
  load "$engine" --workload=personalisation.decide_offers --ids-file="$work/ids.txt" --rate=500 --duration=5s >&2

  health=(); decide=(); recorded=()
  for r in $(seq "$runs"); do
    hold
    echo "# $backend run $r: $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    health+=("$(load "$engine" --workload=health --rate=2000 --concurrency=256 | json_field p99)")
    j=$(load "$engine" --workload=personalisation.decide_offers --ids-file="$work/ids.txt" --rate=2000 --concurrency=256)
    echo "$j" >&2
    decide+=("$(echo "$j" | json_field p99)")
    j=$(load "$engine" --workload=personalisation.decide_offers_recorded --ids-file="$work/ids.txt" --rate=2000 \
      --concurrency=256)
    echo "$j" >&2
    recorded+=("$(echo "$j" | json_field p99)")
    release
  done
  runs_json "${backend}_health_p99_at_2000qps" ms "${health[@]}"
  runs_json "${backend}_decide_offers_p99_at_2000qps" ms "${decide[@]}"
  runs_json "${backend}_decide_offers_recorded_p99_at_2000qps" ms "${recorded[@]}"
  stop_service "$engine_pid"
  stop_service "$store_pid"
done

for backend in $backends; do
  cat <<SUMMARY

$backend, $customers customers, 200 offers, medians of $runs                      median       goal
health check p99 at 2,000 QPS (baseline)                     $(med ${backend}_health_p99_at_2000qps) ms
DecideOffers p99 at 2,000 QPS (preview)                      $(med ${backend}_decide_offers_p99_at_2000qps) ms     <= 2 ms
DecideOffers p99 at 2,000 QPS (recording impressions)        $(med ${backend}_decide_offers_recorded_p99_at_2000qps) ms
SUMMARY
done
