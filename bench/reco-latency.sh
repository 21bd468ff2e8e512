#!/usr/bin/env bash
# Recommend and SimilarProducts over gRPC (issue 15), measured ECRM_BENCH_RUNS times (default 3)
# with the gRPC health baseline of the same ecrm-personalisation in the same run. Writes the
# synthetic population of ecrm-reco-bench (ECRM_RECO_CUSTOMERS customers, default 1,000,000,
# over 100,000 products) into the engine's SQLite database as the orders its feed saves, starts
# Redis, an empty ecrm-infostore and ecrm-personalisation (which learns the saved orders on
# start: the time to SERVING is reported), then per run: health, Recommend (10 items, random
# customers with histories) and SimilarProducts at 2,000 QPS, open loop (ecrm-load,
# ECRM_BENCH_DURATION, default 10s). No catalogue (--transaction-address unset) and no writer.
#   bench/reco-latency.sh [results.jsonl]
# ECRM_BENCH_LOCK=/tmp/ecrm-build.lock: build, and hold that lock during each run's measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${ECRM_BENCH_DURATION:-10s}
runs=${ECRM_BENCH_RUNS:-3}
customers=${ECRM_RECO_CUSTOMERS:-1000000}
lockfile=${ECRM_BENCH_LOCK:-}
source bench/lib.sh
hold() { [ -z "$lockfile" ] || { exec 9>>"$lockfile"; flock 9; }; }
release() { [ -z "$lockfile" ] || flock -u 9; }
hold
bench_setup ecrm-recolat "${1:-}"
release
trap 'bench_cleanup; rm -rf "$work"' EXIT
load() { "$B/tools/loadgen/ecrm-load" --target="$1" --duration=$dur --warmup=2s --connections=2 --json "${@:2}"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $customers customers," \
  "$dur x $runs runs; results in $out" >&2
t0=$(date +%s.%N)
"$B/bench/ecrm-reco-bench" --seed-db="sqlite://$work/personalisation.db" --customers="$customers" >&2
echo "# seeded in $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
start_redis "$work"
redis=redis://127.0.0.1:$REPLY
start_service "$B/services/ecrm-infostore" --database-url="sqlite://$work/infostore.db" --redis-url="$redis"
infostore=$REPLY
hold
t0=$(date +%s.%N)
# As start_service, waiting longer: the engine listens only once it has learnt the saved orders.
ports="$work/ports-personalisation"
"$B/services/ecrm-personalisation" --grpc-address=127.0.0.1:0 --metrics-address=127.0.0.1:0 --port-file="$ports" \
  --log-level=warn --database-url="sqlite://$work/personalisation.db" --redis-url="$redis" \
  --infostore-address="$infostore" 2>>"$work/services.log" &
pids+=($!)
p_pid=$!
for _ in $(seq 6000); do [ -s "$ports" ] && break; kill -0 $p_pid 2>/dev/null || break; sleep 0.1; done
gp=$(sed -n 's/^grpc_port=//p' "$ports" 2>/dev/null)
[ -n "$gp" ] || { echo "ecrm-personalisation did not start:" >&2; cat "$work/services.log" >&2; exit 1; }
p=127.0.0.1:$gp
"$B/tools/healthcheck/ecrm-healthcheck" --target="$p" --wait=30s >/dev/null
start_s=$(echo "$(date +%s.%N) - $t0" | bc)
release
rss_mb=$(($(ps -o rss= -p "$p_pid") / 1024))
echo "# ecrm-personalisation SERVING after ${start_s} s (learning the saved orders), RSS ${rss_mb} MB" >&2

health=(); rec=(); sim=()
for r in $(seq "$runs"); do
  hold
  echo "# run $r: $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  health+=("$(load "$p" --workload=health --rate=2000 --concurrency=256 | json_field p99)")
  rec+=("$(load "$p" --workload=personalisation.recommend --population="$customers" --rate=2000 --concurrency=256 |
    json_field p99)")
  sim+=("$(load "$p" --workload=personalisation.similar_products --population=100000 --rate=2000 --concurrency=256 |
    json_field p99)")
  release
done
runs_json "reco_grpc_health_p99_at_2000qps" ms "${health[@]}"
runs_json "reco_grpc_recommend_p99_at_2000qps" ms "${rec[@]}"
runs_json "reco_grpc_similar_products_p99_at_2000qps" ms "${sim[@]}"
runs_json "reco_grpc_start_seconds" s "$start_s"
runs_json "reco_grpc_rss" MB "$rss_mb"
cat <<SUMMARY

$customers customers, 100,000 products, medians of $runs          median       goal
health check p99 at 2,000 QPS (baseline)            $(med reco_grpc_health_p99_at_2000qps) ms
Recommend p99 at 2,000 QPS                          $(med reco_grpc_recommend_p99_at_2000qps) ms     <= 1 ms
SimilarProducts p99 at 2,000 QPS                    $(med reco_grpc_similar_products_p99_at_2000qps) ms
start to SERVING (learning the saved orders)        ${start_s} s, RSS ${rss_mb} MB
SUMMARY
