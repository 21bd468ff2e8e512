#!/usr/bin/env bash
# Broadcast (issue 16), each measured ECRM_BENCH_RUNS times (default 3), medians printed as JSON
# lines (bench/lib.sh):
#  - fault: broadcast_fault_test with ECRM_BROADCAST_FAULT_RECIPIENTS (100,000) recipients and 5
#    kill -9s to the webhook sink; its line "broadcast-fault: …" gives the send rate (kills and
#    restarts included), the duplicates at the sink, the rows `sending` at each crash and the
#    metric's count;
#  - smtp: ecrm-broadcast-bench --sink=smtp (Postfix's smtp-sink; scripts/install-deps.sh
#    installs it) with ECRM_BROADCAST_SMTP_RECIPIENTS (20,000) 10 KB marketing mails; baseline in
#    the same run: the SmtpChannel alone to the same sink;
#  - webhook: ecrm-broadcast-bench --sink=webhook with ECRM_BROADCAST_WEBHOOK_RECIPIENTS (100,000)
#    SMS; baseline: the WebhookChannel alone. ECRM_BROADCAST_WEBHOOK_ARGS="--render
#    --webhook-profile=generic-batch" also sends each run's SMS as a template rendered per customer by
#    a real ecrm-personalisation (broadcast.webhook.render_msgs_per_s beside the literal msgs_per_s;
#    the sink checks every rendered body).
# ECRM_BROADCAST_PARTS (default "fault smtp webhook") picks some; ECRM_BENCH_LOCK=/tmp/ecrm-build.lock
# holds that lock during each measurement (a shared machine).
#   bench/broadcast.sh [results.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${ECRM_BENCH_RUNS:-3}
parts=${ECRM_BROADCAST_PARTS:-fault smtp webhook}
source bench/lib.sh
B=$(pwd)/build
work=$(mktemp -d /tmp/ecrm-broadcast-bench-XXXXXX)
out=${1:-$work/results.jsonl}
: >"$out"
trap 'bench_cleanup; rm -rf "$work"' EXIT
locked() { if [ -n "${ECRM_BENCH_LOCK:-}" ]; then flock "$ECRM_BENCH_LOCK" "$@"; else "$@"; fi; }
echo "# $(date -u +%FT%TZ) $(nproc) cores, $runs runs; results in $out" >&2

for part in $parts; do
  case $part in
    fault)
      n=${ECRM_BROADCAST_FAULT_RECIPIENTS:-100000}
      rate=(); dup=(); possible=(); counted=()
      for _ in $(seq "$runs"); do
        line=$(ECRM_FAULT_RECIPIENTS=$n locked "$B/tests/broadcast_fault_test" | grep '^broadcast-fault:')
        echo "# $line" >&2
        rate+=("$(echo "$line" | sed -E 's/.*msgs_per_s=([0-9]+).*/\1/')")
        dup+=("$(echo "$line" | sed -E 's/.* duplicates=([0-9]+).*/\1/')")
        possible+=("$(echo "$line" | sed -E 's/.*possible=([0-9]+).*/\1/')")
        counted+=("$(echo "$line" | sed -E 's/.*counted=([0-9]+).*/\1/')")
      done
      runs_json broadcast.fault.msgs_per_s_with_5_kills "msgs/s" "${rate[@]}"
      runs_json broadcast.fault.duplicates_at_sink "msgs" "${dup[@]}"
      runs_json broadcast.fault.sending_at_crashes "rows" "${possible[@]}"
      runs_json broadcast.fault.possible_duplicates_counted "rows" "${counted[@]}"
      ;;
    smtp)
      [ -x /usr/sbin/smtp-sink ] || { echo "# no /usr/sbin/smtp-sink: run scripts/install-deps.sh" >&2; continue; }
      locked "$B/bench/ecrm-broadcast-bench" --sink=smtp --runs="$runs" \
        --recipients="${ECRM_BROADCAST_SMTP_RECIPIENTS:-20000}" ${ECRM_BROADCAST_SMTP_ARGS:-} |
        while read -r l; do emit "$l"; done
      ;;
    webhook)
      locked "$B/bench/ecrm-broadcast-bench" --sink=webhook --runs="$runs" \
        --recipients="${ECRM_BROADCAST_WEBHOOK_RECIPIENTS:-100000}" ${ECRM_BROADCAST_WEBHOOK_ARGS:-} |
        while read -r l; do emit "$l"; done
      ;;
  esac
done
