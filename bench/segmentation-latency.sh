#!/usr/bin/env bash
# Segmentation serving and incremental latency (issue 14), each measured ECRM_BENCH_RUNS times
# (default 3) with the gRPC health baseline of the same ecrm-segmentation in the same run.
# Starts its own Redis, ecrm-infostore and ecrm-segmentation (SQLite, or PostgreSQL with
# ECRM_SEG_BACKENDS="sqlite postgres") on free loopback ports; loads ECRM_SEG_CUSTOMERS (100,000)
# customers through the information store (profile, email/SMS consents, 10 events each over
# 90 days), saves 100 segments ("everyone", the probe segment, 98 varied rules), waits for the
# engine to catch up, then per run:
#   - health, GetCustomerSegments and GetCustomerScores p99 at 2,000 QPS, open loop (ecrm-load,
#     ECRM_BENCH_DURATION, default 10s);
#   - incremental membership latency (ecrm-segmentation-latency-bench): 1,500 changes/s
#     (UpsertCustomer / UpdateConsent / RecordEvents in turn) and 20,000 events/s (RecordEvents of
#     1,000), ECRM_LATENCY_DURATION (60s) each, from the store's acknowledgement to
#     GetCustomerSegments showing the probe segment; then the segment entries and exits the
#     20,000 events/s caused, and the seconds until the engine's outbox had published them all to
#     the store.
#   bench/segmentation-latency.sh [results.jsonl]
# ECRM_BENCH_LOCK=/tmp/ecrm-build.lock: build, and hold that lock during each run's measurements
# (so that nobody builds meanwhile), releasing it between runs. ECRM_SEG_PHASES (default "serving
# changes events") picks the measurements; ECRM_SEG_ARGS adds flags to ecrm-segmentation (e.g.
# --save-interval=0s to compare); ECRM_SEG_BINARY another ecrm-segmentation to measure (a build
# before a change, copied aside; default the one just built); ECRM_INFOSTORE_BIN likewise another
# ecrm-infostore, ECRM_INFOSTORE_ARGS flags added to it. ECRM_SEG_PROBES_DIR: write each run's probes there (events-<backend>-<run>.txt: customer id,
# scheduled, acknowledged and shown times, Unix µs; to join with other clocks, e.g. a stage trace).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${ECRM_BENCH_DURATION:-10s}
lat_dur=${ECRM_LATENCY_DURATION:-60s}
runs=${ECRM_BENCH_RUNS:-3}
customers=${ECRM_SEG_CUSTOMERS:-100000}
backends=${ECRM_SEG_BACKENDS:-sqlite}
phases=" ${ECRM_SEG_PHASES:-serving changes events} "
read -r -a seg_args <<<"${ECRM_SEG_ARGS:-}"
read -r -a store_args <<<"${ECRM_INFOSTORE_ARGS:-}"
lockfile=${ECRM_BENCH_LOCK:-}
slice=$((customers / (2 * runs)))
source bench/lib.sh
hold() { [ -z "$lockfile" ] || { exec 9>>"$lockfile"; flock 9; }; }
release() { [ -z "$lockfile" ] || flock -u 9; }
hold
bench_setup ecrm-seglat "${1:-}"
release
trap 'bench_cleanup; rm -rf "$work"' EXIT
load() { "$B/tools/loadgen/ecrm-load" --target="$1" --duration=$dur --warmup=2s --connections=2 --json "${@:2}"; }
lat() { "$B/bench/ecrm-segmentation-latency-bench" --infostore="$infostore" --segmentation="$seg" \
  --ids-file="$work/ids.txt" "$@"; }
# A process's CPU seconds so far (user + system, from /proc).
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
feed_position() { curl -s "http://$seg_metrics/metrics" | awk '/^ecrm_segmentation_feed_position / {print $2}'; }
# Segment entries and exits so far, and those waiting in the engine's outbox for the store.
memberships() { curl -s "http://$seg_metrics/metrics" | awk '/^ecrm_segmentation_membership_changes_total/ {n += $2} END {print n + 0}'; }
outbox_pending() { curl -s "http://$seg_metrics/metrics" | awk '/^ecrm_segmentation_outbox_pending / {print $2 + 0}'; }
# Seconds from now until the engine's outbox is empty (every entry and exit published to the
# store), at most 30 minutes.
time_to_publish() {
  local t0 p
  t0=$(date +%s.%N)
  for _ in $(seq 1800); do
    p=$(outbox_pending)
    [ "$p" = 0 ] && { awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f\n", a - b }'; return; }
    sleep 1
  done
  echo "# the outbox still holds $p events after 30 minutes" >&2
  echo 1800
}
# Until the engine's applied feed position has not moved for 5 s.
wait_caught_up() {
  local last=-1 same=0 p
  while [ $same -lt 5 ]; do
    sleep 1
    p=$(feed_position)
    if [ "$p" = "$last" ]; then same=$((same + 1)); else same=0; last=$p; fi
  done
  echo "# feed position $last" >&2
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $customers customers," \
  "$dur x $runs runs (latency $lat_dur); results in $out" >&2
start_redis "$work"
redis=redis://127.0.0.1:$REPLY
[[ " $backends " == *" postgres "* ]] && { start_postgres "$work"; pg_port=$REPLY; }

for backend in $backends; do
  if [ "$backend" = sqlite ]; then
    store_url="sqlite://$work/infostore.db"
    seg_url="sqlite://$work/segmentation.db"
  else
    "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres infostore
    "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres segmentation
    store_url="postgresql://postgres@127.0.0.1:$pg_port/infostore"
    seg_url="postgresql://postgres@127.0.0.1:$pg_port/segmentation"
  fi
  start_service "${ECRM_INFOSTORE_BIN:-$B/services/ecrm-infostore}" --database-url="$store_url" --redis-url="$redis" \
    "${store_args[@]}"
  infostore=$REPLY
  store_pid=$SERVICE_PID
  start_service "${ECRM_SEG_BINARY:-$B/services/ecrm-segmentation}" --database-url="$seg_url" --infostore-address="$infostore" \
    "${seg_args[@]}"
  seg=$REPLY
  seg_metrics=$METRICS_ADDR
  seg_pid=$SERVICE_PID
  # Loading and the first catch-up hold the lock too: two processes at full speed for minutes.
  hold
  lat --mode=seed --customers="$customers" >&2
  wait_caught_up
  lat --mode=segments --segments=100 >&2
  wait_caught_up
  release

  ev_cpu=(); ev_scpu=(); health=(); segs=(); scores=(); ch_p99=(); ch_max=(); ch_fail=(); ev_p99=(); ev_max=(); ev_fail=(); ev_rate=(); ch_w99=(); ev_w99=(); ev_memb=(); ev_pub=()
  for r in $(seq "$runs"); do
    hold
    echo "# $backend run $r: $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    if [[ $phases == *" serving "* ]]; then
      health+=("$(load "$seg" --workload=health --rate=2000 --concurrency=256 | json_field p99)")
      segs+=("$(load "$seg" --workload=segmentation.customer_segments --rate=2000 --concurrency=256 | json_field p99)")
      scores+=("$(load "$seg" --workload=segmentation.customer_scores --rate=2000 --concurrency=256 | json_field p99)")
    fi
    # Probe customers (each probed once): run r's changes from line 2 (r - 1) slice, its events from
    # the next slice.
    if [[ $phases == *" changes "* ]]; then
      j=$(lat --mode=changes --rate=1500 --probe-every=20 --duration="$lat_dur" --probe-first=$((2 * (r - 1) * slice)) ||
        true)
      echo "$j" >>"$work/latency.jsonl"
      ch_p99+=("$(echo "$j" | json_field p99)"); ch_max+=("$(echo "$j" | json_field max)")
      ch_fail+=("$(echo "$j" | json_field failed)"); ch_w99+=("$(echo "$j" | json_field write_p99_ms)")
    fi
    [[ $phases == *" events "* ]] || { release; continue; }
    cpu0=$(proc_cpu "$seg_pid"); scpu0=$(proc_cpu "$store_pid"); m0=$(memberships)
    probes_arg=()
    [ -z "${ECRM_SEG_PROBES_DIR:-}" ] || probes_arg=(--probes-file="$ECRM_SEG_PROBES_DIR/events-$backend-$r.txt")
    j=$(lat --mode=events --rate=20000 --batch=1000 --probe-every=1 --duration="$lat_dur" \
      --probe-first=$(((2 * r - 1) * slice)) "${probes_arg[@]}" || true)
    echo "$j" >>"$work/latency.jsonl"
    ev_p99+=("$(echo "$j" | json_field p99)"); ev_max+=("$(echo "$j" | json_field max)")
    ev_fail+=("$(echo "$j" | json_field failed)"); ev_rate+=("$(echo "$j" | json_field achieved_rate)")
    ev_w99+=("$(echo "$j" | json_field write_p99_ms)")
    ev_memb+=("$(($(memberships) - m0))")
    release
    # The entries and exits the phase caused reach the store through the engine's outbox.
    ev_pub+=("$(time_to_publish)")
    # CPU seconds of each process over the events phase (until the engine caught up).
    wait_caught_up
    ev_cpu+=("$(echo "$(proc_cpu "$seg_pid") - $cpu0" | bc)"); ev_scpu+=("$(echo "$(proc_cpu "$store_pid") - $scpu0" | bc)")
  done
  [ ! -f "$work/latency.jsonl" ] || cat "$work/latency.jsonl" >&2  # none with the serving phase alone
  runs_json "${backend}_health_p99_at_2000qps" ms "${health[@]}"
  runs_json "${backend}_customer_segments_p99_at_2000qps" ms "${segs[@]}"
  runs_json "${backend}_customer_scores_p99_at_2000qps" ms "${scores[@]}"
  runs_json "${backend}_membership_p99_1500_changes" ms "${ch_p99[@]}"
  runs_json "${backend}_membership_max_1500_changes" ms "${ch_max[@]}"
  runs_json "${backend}_membership_failed_1500_changes" probes "${ch_fail[@]}"
  runs_json "${backend}_membership_p99_20000_events" ms "${ev_p99[@]}"
  runs_json "${backend}_membership_max_20000_events" ms "${ev_max[@]}"
  runs_json "${backend}_membership_failed_20000_events" probes "${ev_fail[@]}"
  runs_json "${backend}_events_achieved" events/s "${ev_rate[@]}"
  runs_json "${backend}_write_p99_1500_changes" ms "${ch_w99[@]}"
  runs_json "${backend}_write_p99_20000_events" ms "${ev_w99[@]}"
  runs_json "${backend}_memberships_20000_events" changes "${ev_memb[@]}"
  runs_json "${backend}_publish_after_20000_events" s "${ev_pub[@]}"
  runs_json "${backend}_segmentation_cpu_20000_events" s "${ev_cpu[@]}"
  runs_json "${backend}_infostore_cpu_20000_events" s "${ev_scpu[@]}"
  stop_service "$seg_pid"
  stop_service "$store_pid"
done

for backend in $backends; do
  cat <<SUMMARY

$backend, $customers customers, 100 segments, medians of $runs       median       goal
health check p99 at 2,000 QPS (baseline)               $(med ${backend}_health_p99_at_2000qps) ms
GetCustomerSegments p99 at 2,000 QPS                   $(med ${backend}_customer_segments_p99_at_2000qps) ms     <= 1 ms
GetCustomerScores p99 at 2,000 QPS                     $(med ${backend}_customer_scores_p99_at_2000qps) ms     <= 1 ms
membership p99, 1,500 changes/s ($lat_dur)               $(med ${backend}_membership_p99_1500_changes) ms     <= 100 ms (max $(med ${backend}_membership_max_1500_changes) ms, failed $(med ${backend}_membership_failed_1500_changes); write p99 $(med ${backend}_write_p99_1500_changes) ms)
membership p99, 20,000 events/s ($lat_dur)               $(med ${backend}_membership_p99_20000_events) ms     <= 1,000 ms (max $(med ${backend}_membership_max_20000_events) ms, failed $(med ${backend}_membership_failed_20000_events); $(med ${backend}_events_achieved) events/s achieved, write p99 $(med ${backend}_write_p99_20000_events) ms)
segment entries and exits in that phase             $(med ${backend}_memberships_20000_events), all published to the store $(med ${backend}_publish_after_20000_events) s after it
CPU seconds over the 20,000 events/s phase          segmentation $(med ${backend}_segmentation_cpu_20000_events) s, infostore $(med ${backend}_infostore_cpu_20000_events) s
SUMMARY
done
