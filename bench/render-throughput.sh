#!/usr/bin/env bash
# BatchRender throughput over gRPC (issue 15): real engines on loopback, measured ECRM_BENCH_RUNS
# times (default 3). Starts its own Redis, ecrm-infostore, ecrm-transaction (the catalogue:
# ECRM_RENDER_PRODUCTS products p000000…, active, titled, priced) and ecrm-personalisation
# (SQLite; its model learns ECRM_RENDER_RECO_CUSTOMERS customers' orders written by
# ecrm-reco-bench --seed-db, so popularity is real; --redis-local-copies as offers-latency.sh);
# seeds ECRM_RENDER_CUSTOMERS (10,000) customers through the information store; then per run,
# closed loop, 2 calls in flight over 2 connections for ECRM_BENCH_DURATION (10s):
# personalisation.batch_render — BatchRender of 1,000 customers for placement "home" with no
# offers and no recommendations given, so the engine reads each customer (Redis MultiGet),
# decides their offers (200 active) and fetches their 10 recommendations (described by the
# catalogue), and renders subject, text and HTML. The health check p99 at 2,000 QPS of the same
# run is the machine's baseline.
#   bench/render-throughput.sh [results.jsonl]
# ECRM_BENCH_LOCK=/tmp/ecrm-build.lock: build, and hold that lock during each run's measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${ECRM_BENCH_DURATION:-10s}
runs=${ECRM_BENCH_RUNS:-3}
customers=${ECRM_RENDER_CUSTOMERS:-10000}
reco_customers=${ECRM_RENDER_RECO_CUSTOMERS:-100000}
products=${ECRM_RENDER_PRODUCTS:-2000}
lockfile=${ECRM_BENCH_LOCK:-}
source bench/lib.sh
hold() { [ -z "$lockfile" ] || { exec 9>>"$lockfile"; flock 9; }; }
release() { [ -z "$lockfile" ] || flock -u 9; }
hold
bench_setup ecrm-render "${1:-}"
release
trap 'bench_cleanup; rm -rf "$work"' EXIT
load() { "$B/tools/loadgen/ecrm-load" --target="$1" --duration=$dur --warmup=2s --connections=2 --json "${@:2}"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $customers customers," \
  "$products products, $dur x $runs runs; results in $out" >&2
"$B/bench/ecrm-reco-bench" --seed-db="sqlite://$work/personalisation.db" --customers="$reco_customers" >&2
start_redis "$work"
redis=redis://127.0.0.1:$REPLY
start_service "$B/services/ecrm-infostore" --database-url="sqlite://$work/infostore.db" --redis-url="$redis"
infostore=$REPLY
start_service "$B/services/ecrm-transaction" --database-url="sqlite://$work/transaction.db" --redis-url=
transaction=$REPLY
# The catalogue: the model's first products (its most popular clusters), as reco_bench names them.
awk -v n="$products" 'BEGIN { for (p = 0; p < n; p++)
  printf "{\"sku\":\"p%06d\",\"title\":\"Product %d\",\"category\":\"cat%d/sub%d\",\"price\":{\"amountMinor\":\"%d\",\"currency\":\"GBP\"},\"active\":true}\n",
    p, p, int(p / 1000), int(p / 100), 199 + (p * 37) % 9800 }' >"$work/products.jsonl"
"$B/tools/ecrmctl/ecrmctl" products import "$work/products.jsonl" --transaction-address="$transaction" >&2
# As start_service, waiting longer: the engine listens once it has learnt the saved orders.
ports="$work/ports-personalisation"
"$B/services/ecrm-personalisation" --grpc-address=127.0.0.1:0 --metrics-address=127.0.0.1:0 --port-file="$ports" \
  --log-level=warn --database-url="sqlite://$work/personalisation.db" --redis-url="$redis" \
  --redis-local-copies=$((customers * 2)) --infostore-address="$infostore" --transaction-address="$transaction" \
  2>>"$work/services.log" &
pids+=($!)
for _ in $(seq 6000); do [ -s "$ports" ] && break; kill -0 $! 2>/dev/null || break; sleep 0.1; done
gp=$(sed -n 's/^grpc_port=//p' "$ports" 2>/dev/null)
[ -n "$gp" ] || { echo "ecrm-personalisation did not start:" >&2; cat "$work/services.log" >&2; exit 1; }
engine=127.0.0.1:$gp
"$B/tools/healthcheck/ecrm-healthcheck" --target="$engine" --wait=30s >/dev/null
"$B/bench/ecrm-segmentation-latency-bench" --mode=seed --infostore="$infostore" --customers="$customers" \
  --events-per-customer=2 --ids-file="$work/ids.txt" >&2
# Creates the 200 offers and the template, and reads every customer (the information store fills the cache).
load "$engine" --workload=personalisation.batch_render --ids-file="$work/ids.txt" --rate=0 --concurrency=2 \
  --duration=5s >&2

health=(); rendered=(); p99=()
for r in $(seq "$runs"); do
  hold
  echo "# run $r: $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  health+=("$(load "$engine" --workload=health --rate=2000 --concurrency=256 | json_field p99)")
  j=$(load "$engine" --workload=personalisation.batch_render --ids-file="$work/ids.txt" --rate=0 --concurrency=2)
  echo "$j" >&2
  echo "$j" | grep -q '"errors":{}' || { echo "BatchRender failed: $j" >&2; exit 1; }
  rendered+=("$(echo "$j" | json_field achieved_rate | awk '{ printf "%d", $1 * 1000 }')")
  p99+=("$(echo "$j" | json_field p99)")
  release
done
runs_json "render_grpc_health_p99_at_2000qps" ms "${health[@]}"
runs_json "render_grpc_batch_render_messages_per_s" messages/s "${rendered[@]}"
runs_json "render_grpc_batch_render_call_p99" ms "${p99[@]}"
cat <<SUMMARY

$customers customers, 200 offers, $products products, medians of $runs           median       goal
health check p99 at 2,000 QPS (baseline)                         $(med render_grpc_health_p99_at_2000qps) ms
BatchRender, offers decided + recommendations fetched            $(med render_grpc_batch_render_messages_per_s) messages/s   >= 10,000
BatchRender call p99 (1,000 customers, 2 in flight)              $(med render_grpc_batch_render_call_p99) ms
SUMMARY
