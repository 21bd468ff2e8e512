#!/usr/bin/env bash
# The information store at scale (issue 3): loads ECRM_DATASET_CUSTOMERS customers (default
# 1,000,000, created by their first event's device id) and ECRM_DATASET_EVENTS events (default
# 10,000,000) through RecordEvents into a fresh SQLite database, then serves GetCustomer and
# UpsertCustomer load while sampling the service's resident memory every 5 s.
#   bench/dataset.sh [results.jsonl]   (ECRM_DATASET_URL=postgresql://… for another database)
# To compare binaries on one loaded database: ECRM_DATASET_KEEP=/path/infostore.db loads into
# that file and keeps it (a file that exists is served as it is, without loading), and
# ECRM_INFOSTORE_BIN=/path/ecrm-infostore serves with another build.
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${ECRM_DATASET_CUSTOMERS:-1000000}
events=${ECRM_DATASET_EVENTS:-10000000}
serve_runs=${ECRM_DATASET_SERVE_RUNS:-3}
source bench/lib.sh
bench_setup ecrm-dataset "${1:-}"
trap 'bench_cleanup; rm -rf "$work"' EXIT
keep=${ECRM_DATASET_KEEP:-}
url=${ECRM_DATASET_URL:-sqlite://${keep:-$work/infostore.db}}
binary=${ECRM_INFOSTORE_BIN:-$B/services/ecrm-infostore}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

start_redis "$work"
loaded=false
[ -n "$keep" ] && [ -s "$keep" ] && loaded=true
start_service "$binary" --database-url="$url" --redis-url="redis://127.0.0.1:$REPLY"
target=$REPLY
svc=${pids[-1]}
if ! $loaded; then
  echo "# $(date -u +%FT%TZ) loading $customers customers, $events events into $url" >&2
  start=$(date +%s)
  rate=$("$B/bench/ecrm-infostore-bench" --target="$target" --mode=events --customers="$customers" \
    --total-events="$events" --duration=4h | json_field median)
  secs=$(($(date +%s) - start))
  emit "{\"bench\":\"dataset_load\",\"customers\":$customers,\"events\":$events,\"seconds\":$secs,\"events_per_s\":$rate}"
fi
if [[ $url == sqlite://* ]]; then
  db=${url#sqlite://}
  emit "{\"bench\":\"dataset_rows\",\"binary\":\"$binary\",\"customers\":$(sqlite3 "$db" 'SELECT COUNT(*) FROM customers'),\"events\":$(sqlite3 "$db" 'SELECT COUNT(*) FROM events'),\"db_mb\":$(($(du -cm "$db"* | tail -1 | cut -f1)))}"
fi
samples=("$(rss_mb "$svc")")
for run in $(seq "$serve_runs"); do
  for workload in infostore.get infostore.upsert; do
    "$B/tools/loadgen/ecrm-load" --target="$target" --workload=$workload --rate=1000 --concurrency=64 \
      --duration=20s --warmup=1s --json >"$work/load.json" &
    lp=$!
    for _ in 1 2 3 4; do sleep 5; samples+=("$(rss_mb "$svc")"); done
    wait $lp
    emit "{\"bench\":\"dataset_serve\",\"run\":$run,\"load\":$(cat "$work/load.json")}"
  done
done
emit "{\"bench\":\"dataset_rss_mb\",\"samples\":[$(IFS=,; echo "${samples[*]}")],\"first\":${samples[0]},\"max\":$(printf '%s\n' "${samples[@]}" | sort -n | tail -1),\"last\":${samples[-1]}}"
