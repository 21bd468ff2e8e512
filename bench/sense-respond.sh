#!/usr/bin/env bash
# Sense and respond (issue 17): from a triggering event acknowledged by the information store to
# the triggered campaign's mail accepted by the SMTP server, at ECRM_SR_RATE (200) triggers/s
# under ECRM_SR_BACKGROUND_RATE (5,000) background events/s, each of ECRM_BENCH_RUNS (3) runs of
# ECRM_SR_DURATION (30s) after 5 s of warm-up, with the gRPC health baseline of the same
# ecrm-infostore in the same run (2,000 QPS, 10 s, just before).
# Starts its own Redis, SMTP server (tests/support/smtp_server.py --no-fsync), and the five
# engines on SQLite wired as scripts/run-suite.sh wires them, on free loopback ports; seeds
# customers with email consent (ecrm-sense-respond-bench --mode=seed), saves the segment
# "abandoned-carts" (events.count("cart_abandoned", 1d) > 0), a template and a triggered campaign
# on it (--mode=setup), waits for segmentation to catch up, then per run: each trigger is a
# RecordEvents of one cart_abandoned event for a customer not triggered before (the event the
# transaction engine's cart scanner records), the background page_view / product_view / search
# events go to 5,000 other customers in calls of 100; the latency of each trigger is the SMTP
# server's accepted_at of the customer's mail less the RecordEvents acknowledgement.
#   bench/sense-respond.sh [results.jsonl]
# ECRM_SR_KEEP=1 keeps the work directory (databases, mail, acks-N.txt) and prints the latency of
# each run by stage (bench/sense-respond-stages.py).
# ECRM_BENCH_LOCK=/tmp/ecrm-build.lock: build, and hold that lock during each run (so that nobody
# builds meanwhile), releasing it between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${ECRM_BENCH_RUNS:-3}
dur=${ECRM_SR_DURATION:-30s}
rate=${ECRM_SR_RATE:-200}
bg_rate=${ECRM_SR_BACKGROUND_RATE:-5000}
background=5000
lockfile=${ECRM_BENCH_LOCK:-}
source bench/lib.sh
hold() { [ -z "$lockfile" ] || { exec 9>>"$lockfile"; flock 9; }; }
release() { [ -z "$lockfile" ] || flock -u 9; }
hold
bench_setup ecrm-sr "${1:-}"
release
trap 'bench_cleanup; [ -n "${ECRM_SR_KEEP:-}" ] && echo "# kept $work" >&2 || rm -rf "$work"' EXIT
per_run=$(awk -v r="$rate" -v d="${dur%s}" 'BEGIN { printf "%d", r * (d + 5) + 1 }')
customers=$((background + runs * per_run))
bench() { "$B/bench/ecrm-sense-respond-bench" --infostore="$infostore" --ids-file="$work/ids.txt" "$@"; }
feed_position() { curl -s "http://$seg_metrics/metrics" | awk '/^ecrm_segmentation_feed_position / {print $2}'; }
# Until the engine's applied feed position has not moved for 3 s.
wait_caught_up() {
  local last=-1 same=0 p
  while [ $same -lt 3 ]; do
    sleep 1
    p=$(feed_position)
    if [ "$p" = "$last" ]; then same=$((same + 1)); else same=0; last=$p; fi
  done
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $rate triggers/s and" \
  "$bg_rate background events/s, $dur x $runs runs; results in $out" >&2
start_redis "$work"
redis=redis://127.0.0.1:$REPLY
mkdir -p "$work/mail"
/usr/bin/python3 tests/support/smtp_server.py --dir "$work/mail" --port-file "$work/smtp.port" --no-fsync \
  >"$work/smtp.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/smtp.port" ] && break; sleep 0.1; done
smtp_port=$(cat "$work/smtp.port")
export ECRM_TRACKING_SECRET=sense-and-respond-bench-secret
start_service "$B/services/ecrm-infostore" --database-url="sqlite://$work/infostore.db" --redis-url="$redis"
infostore=$REPLY
peers=--infostore-address=$infostore
start_service "$B/services/ecrm-transaction" --database-url="sqlite://$work/transaction.db" --redis-url= "$peers"
start_service "$B/services/ecrm-personalisation" --database-url="sqlite://$work/personalisation.db" \
  --redis-url="$redis" "$peers"
personalisation=$REPLY
start_service "$B/services/ecrm-broadcast" --database-url="sqlite://$work/broadcast.db" --redis-url="$redis" "$peers" \
  --personalisation-address="$personalisation" --smtp-url="smtp://127.0.0.1:$smtp_port" \
  --smtp-from=shop@shop.example --public-base-url=https://t.example.com
broadcast=$REPLY
start_service "$B/services/ecrm-segmentation" --database-url="sqlite://$work/segmentation.db" --redis-url= "$peers" \
  --broadcast-address="$broadcast"
segmentation=$REPLY
seg_metrics=$METRICS_ADDR
bench --mode=seed --customers=$customers >&2
bench --mode=setup --segmentation="$segmentation" --personalisation="$personalisation" >&2
wait_caught_up

health=(); p50=(); p99=(); mx=(); missing=(); w99=(); bg=()
for r in $(seq "$runs"); do
  hold
  echo "# run $r: $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  health+=("$("$B/tools/loadgen/ecrm-load" --target="$infostore" --workload=health --rate=2000 --concurrency=256 \
    --connections=2 --duration=10s --warmup=2s --json | json_field p99)")
  j=$(bench --mode=run --smtp-dir="$work/mail" --rate="$rate" --background-rate="$bg_rate" --duration="$dur" \
    --warmup=5s --background=$background --first=$((background + (r - 1) * per_run)) --acks-file="$work/acks-$r.txt" ||
    true)
  echo "$j" | tee -a "$work/runs.jsonl" >&2
  [ -z "${ECRM_SR_KEEP:-}" ] || python3 bench/sense-respond-stages.py "$work" "$work/acks-$r.txt" >&2
  p50+=("$(echo "$j" | json_field p50)"); p99+=("$(echo "$j" | json_field p99)"); mx+=("$(echo "$j" | json_field max)")
  missing+=("$(echo "$j" | json_field missing)"); w99+=("$(echo "$j" | json_field write_p99_ms)")
  bg+=("$(echo "$j" | json_field background_rate)")
  release
  wait_caught_up
done
runs_json health_p99_at_2000qps ms "${health[@]}"
runs_json sense_respond_p50 ms "${p50[@]}"
runs_json sense_respond_p99 ms "${p99[@]}"
runs_json sense_respond_max ms "${mx[@]}"
runs_json sense_respond_missing mails "${missing[@]}"
runs_json sense_respond_trigger_write_p99 ms "${w99[@]}"
runs_json sense_respond_background_achieved events/s "${bg[@]}"
cat <<SUMMARY

sense and respond, SQLite, $rate triggers/s + $bg_rate events/s, medians of $runs   median     goal
health check p99 at 2,000 QPS (baseline)              $(med health_p99_at_2000qps) ms
event acknowledged -> mail accepted, p50              $(med sense_respond_p50) ms
event acknowledged -> mail accepted, p99              $(med sense_respond_p99) ms   <= 2,000 ms
  (max $(med sense_respond_max) ms, missing $(med sense_respond_missing) mails, trigger write p99 $(med sense_respond_trigger_write_p99) ms, background $(med sense_respond_background_achieved) events/s achieved)
SUMMARY
