#!/usr/bin/env bash
# RecordEvents to random existing customers (issue 14): calls of 1,000 events to customers drawn
# at random from ECRM_EVENTS_CUSTOMERS (100,000) seeded through UpsertCustomer (a 9-field
# profile with provenance, ~60% an email consent). Each of ECRM_BENCH_RUNS (3) runs measures,
# on one ecrm-infostore with Redis:
#   - the gRPC health check's saturation (the baseline of the run: machine noise),
#   - RecordEvents saturation: 4 streams of 1,000-event batches for ECRM_EVENTS_DURATION (30s),
#     with the service's CPU (cores, from /proc) and its event-writer thread's share,
#   - ECRM_EVENTS_RATE (20,000) events/s open loop in calls of 1,000 (each its own stream) for
#     the same time: the acknowledgements' lateness against the schedule and the service's CPU.
#   bench/infostore-events.sh [results.jsonl]
# ECRM_EVENTS_BACKENDS="sqlite postgres" adds PostgreSQL. ECRM_BENCH_LOCK=/tmp/ecrm-build.lock:
# build, seed and each run's measurements hold that lock. ECRM_INFOSTORE_BIN runs another
# ecrm-infostore binary (an earlier build, to compare); ECRM_INFOSTORE_ARGS adds flags to it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${ECRM_BENCH_RUNS:-3}
customers=${ECRM_EVENTS_CUSTOMERS:-100000}
dur=${ECRM_EVENTS_DURATION:-30s}
rate=${ECRM_EVENTS_RATE:-20000}
backends=${ECRM_EVENTS_BACKENDS:-sqlite}
lockfile=${ECRM_BENCH_LOCK:-}
source bench/lib.sh
hold() { [ -z "$lockfile" ] || { exec 9>>"$lockfile"; flock 9; }; }
release() { [ -z "$lockfile" ] || flock -u 9; }
hold
bench_setup ecrm-bench-events "${1:-}"
release
trap 'bench_cleanup; rm -rf "$work"' EXIT
service_bin=${ECRM_INFOSTORE_BIN:-$B/services/ecrm-infostore}
ticks=$(getconf CLK_TCK)
# cpu_ticks PID [THREAD-NAME]: user+system ticks of the process (or of its threads so named).
cpu_ticks() {
  local f sum=0
  for f in /proc/$1/task/*/stat; do
    [ -n "${2:-}" ] && [ "$(cat "${f%stat}comm" 2>/dev/null)" != "$2" ] && continue
    sum=$((sum + $(sed -E 's/.*\) //' "$f" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
  done
  echo $sum
}
# measure NAME CMD...: runs CMD, prints its JSON line with the service's cores and the writer's.
measure() {
  local t0 w0 s0 s1 line
  t0=$(cpu_ticks "$SERVICE_PID"); w0=$(cpu_ticks "$SERVICE_PID" event-writer); s0=$(date +%s.%N)
  line=$("$@")
  s1=$(date +%s.%N)
  awk -v t="$(( $(cpu_ticks "$SERVICE_PID") - t0 ))" -v w="$(( $(cpu_ticks "$SERVICE_PID" event-writer) - w0 ))" \
      -v s="$(echo "$s1 - $s0" | bc)" -v hz="$ticks" -v l="$line" \
      'BEGIN { sub(/}$/, "", l); printf "%s,\"service_cores\":%.2f,\"writer_cores\":%.2f}\n", l, t / hz / s, w / hz / s }'
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $customers customers, $runs runs of $dur, open loop $rate events/s; results in $out" >&2
start_redis "$work"
redis=redis://127.0.0.1:$REPLY
for backend in $backends; do
  if [ "$backend" = sqlite ]; then
    url="sqlite://$work/infostore.db"
  else
    start_postgres "$work"
    "$pg_bin/createdb" -h 127.0.0.1 -p "$REPLY" -U postgres infostore
    url="postgresql://postgres@127.0.0.1:$REPLY/infostore"
  fi
  # shellcheck disable=SC2086
  start_service "$service_bin" --database-url="$url" --redis-url="$redis" ${ECRM_INFOSTORE_ARGS:-}
  target=$REPLY
  ids=$work/ids-$backend.txt
  hold
  "$B/bench/ecrm-infostore-bench" --target="$target" --mode=seed --customers="$customers" --ids-file="$ids" >&2
  release
  health=(); sat=(); sat_cores=(); sat_writer=(); ol_rate=(); ol_p99=(); ol_cores=(); ol_writer=()
  for r in $(seq "$runs"); do
    hold
    h=$("$B/tools/loadgen/ecrm-load" --target="$target" --workload=health --rate=0 --concurrency=64 --duration=10s \
          --warmup=2s --connections=2 --json | json_field achieved_rate | cut -d. -f1)
    s=$(measure "$B/bench/ecrm-infostore-bench" --target="$target" --mode=events --ids-file="$ids" --batch=1000 \
          --streams=4 --duration="$dur")
    o=$(measure "$B/bench/ecrm-infostore-bench" --target="$target" --mode=events --ids-file="$ids" --batch=1000 \
          --rate="$rate" --duration="$dur")
    release
    echo "# $backend run $r: health $h req/s; saturation $s; open loop $o" >&2
    health+=("$h")
    sat+=("$(echo "$s" | json_field median)"); sat_cores+=("$(echo "$s" | json_field service_cores)")
    sat_writer+=("$(echo "$s" | json_field writer_cores)")
    ol_rate+=("$(echo "$o" | json_field achieved_rate)"); ol_p99+=("$(echo "$o" | json_field late_p99_ms)")
    ol_cores+=("$(echo "$o" | json_field service_cores)"); ol_writer+=("$(echo "$o" | json_field writer_cores)")
  done
  runs_json "${backend}_events_health_saturation" "req/s" "${health[@]}"
  runs_json "${backend}_events_random_saturation" "events/s" "${sat[@]}"
  runs_json "${backend}_events_random_saturation_cores" "cores" "${sat_cores[@]}"
  runs_json "${backend}_events_random_saturation_writer_cores" "cores" "${sat_writer[@]}"
  runs_json "${backend}_events_at_${rate}_achieved" "events/s" "${ol_rate[@]}"
  runs_json "${backend}_events_at_${rate}_late_p99" "ms" "${ol_p99[@]}"
  runs_json "${backend}_events_at_${rate}_cores" "cores" "${ol_cores[@]}"
  runs_json "${backend}_events_at_${rate}_writer_cores" "cores" "${ol_writer[@]}"
  stop_service "$SERVICE_PID"
done
