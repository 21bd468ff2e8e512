#!/usr/bin/env bash
# The information store's figures (issue 3), each measured ECRM_BENCH_RUNS times (default 3)
# with the gRPC health baseline of the same service in the same run. Starts its own Redis,
# PostgreSQL and ecrm-infostore instances on free loopback ports and stops them at the end.
#   bench/infostore.sh [results.jsonl]
# ECRM_BENCH_DURATION (10s) for RPC loads; ECRM_EVENTS_DURATION (60s) for RecordEvents.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${ECRM_BENCH_DURATION:-10s}
events_dur=${ECRM_EVENTS_DURATION:-60s}
runs=${ECRM_BENCH_RUNS:-3}
source bench/lib.sh
bench_setup ecrm-bench "${1:-}"
trap 'bench_cleanup; rm -rf "$work"' EXIT
load() { "$B/tools/loadgen/ecrm-load" --target="$1" --duration=$dur --warmup=2s --connections=2 --json "${@:2}"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, $dur x $runs runs (RecordEvents $events_dur); results in $out" >&2
start_redis "$work"
redis=redis://127.0.0.1:$REPLY
start_postgres "$work"
pg_port=$REPLY
"$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres infostore

for backend in sqlite postgres; do
  if [ $backend = sqlite ]; then url="sqlite://$work/infostore.db"; else url="postgresql://postgres@127.0.0.1:$pg_port/infostore"; fi
  start_service "$B/services/ecrm-infostore" --database-url="$url" --redis-url="$redis"
  target=$REPLY
  # The cache-miss path: the same database with the cache turned off (every read is a database read).
  start_service "$B/services/ecrm-infostore" --database-url="$url" --redis-url=
  nocache=$REPLY
  health=(); hit=(); hit_p99=(); miss_p99=(); upsert=(); events=(); watch=()
  for _ in $(seq "$runs"); do
    health+=("$(load "$target" --workload=health --rate=0 --concurrency=64 | json_field achieved_rate | cut -d. -f1)")
    hit+=("$(load "$target" --workload=infostore.get --rate=0 --concurrency=64 | json_field achieved_rate | cut -d. -f1)")
    hit_p99+=("$(load "$target" --workload=infostore.get --rate=2000 --concurrency=256 | json_field p99)")
    miss_p99+=("$(load "$nocache" --workload=infostore.get --rate=1000 --concurrency=256 | json_field p99)")
    upsert+=("$(load "$target" --workload=infostore.upsert --rate=0 --concurrency=8 | json_field achieved_rate | cut -d. -f1)")
    events+=("$("$B/bench/ecrm-infostore-bench" --target="$target" --mode=events --duration=$events_dur | json_field median)")
    watch+=("$("$B/bench/ecrm-infostore-bench" --target="$target" --mode=watch 2>/dev/null | json_field median)")
  done
  runs_json "${backend}_health_saturation" "req/s" "${health[@]}"
  runs_json "${backend}_get_hit_saturation" "req/s" "${hit[@]}"
  runs_json "${backend}_get_hit_p99_at_2000qps" "ms" "${hit_p99[@]}"
  runs_json "${backend}_get_miss_p99_at_1000qps" "ms" "${miss_p99[@]}"
  runs_json "${backend}_upsert_8_clients" "req/s" "${upsert[@]}"
  runs_json "${backend}_record_events" "events/s" "${events[@]}"
  runs_json "${backend}_watch_changes" "changes/s" "${watch[@]}"
done

cat <<SUMMARY

measurement                                 SQLite                PostgreSQL            goal
health check saturation (baseline)          $(med sqlite_health_saturation) req/s        $(med postgres_health_saturation) req/s
GetCustomer cache hit, saturation           $(med sqlite_get_hit_saturation) ($(ratio sqlite_get_hit_saturation sqlite_health_saturation))   $(med postgres_get_hit_saturation) ($(ratio postgres_get_hit_saturation postgres_health_saturation))   >= 60% of baseline
GetCustomer cache hit, p99 at 2,000 QPS     $(med sqlite_get_hit_p99_at_2000qps) ms             $(med postgres_get_hit_p99_at_2000qps) ms            <= 2 ms
GetCustomer cache miss, p99 at 1,000 QPS    $(med sqlite_get_miss_p99_at_1000qps) ms             $(med postgres_get_miss_p99_at_1000qps) ms            <= 5 ms
UpsertCustomer, 8 clients                   $(med sqlite_upsert_8_clients) /s              $(med postgres_upsert_8_clients) /s             >= 3,000/s (SQLite)
RecordEvents, $events_dur sustained            $(med sqlite_record_events) events/s       $(med postgres_record_events) events/s      >= 100,000 (SQLite), >= 30,000 (PG)
WatchChanges, one consumer                  $(med sqlite_watch_changes) changes/s      $(med postgres_watch_changes) changes/s     >= 200,000
SUMMARY
