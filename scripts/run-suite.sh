#!/usr/bin/env bash
# Runs the whole ecrm suite on this machine: Redis and the five engines, each engine with an
# embedded SQLite database in ./data. Installs and builds what is missing first.
#
#   scripts/run-suite.sh          # start (or report that it is already running)
#   scripts/run-suite.sh demo     # start, then run the demo (ecrmctl demo): a synthetic shop through
#                                 # the whole loop, ending in a campaign report
#   scripts/run-suite.sh status   # health of each process
#   scripts/run-suite.sh stop     # graceful stop (SIGTERM) of every process it started
#
# Mail goes to a local SMTP server (Debian python3-aiosmtpd) that keeps every message it accepts
# in ./run/mail as .eml files; nothing leaves the machine.
#
# Environment: ECRM_DATA_DIR (./data), ECRM_RUN_DIR (./run: logs, pids, mail), ECRM_REDIS_PORT
# (6379), ECRM_SMTP_PORT (2525), ECRM_SCORES_INTERVAL (15s: how often segmentation rescores).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=${ECRM_DATA_DIR:-$root/data}
run=${ECRM_RUN_DIR:-$root/run}
build=${ECRM_BUILD_DIR:-$root/build}
redis_port=${ECRM_REDIS_PORT:-6379}
smtp_port=${ECRM_SMTP_PORT:-2525}
engines=(infostore:50051:9101 segmentation:50052:9102 personalisation:50053:9103 broadcast:50054:9104
         transaction:50055:9105)

# A process that has exited but not yet been reaped (a zombie: its parent, this script's earlier
# run, is gone and some container inits reap late) counts as stopped.
running() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
alive() { [ -f "$run/pids/$1.pid" ] && running "$(cat "$run/pids/$1.pid")"; }

stop_one() {
  local name=$1
  alive "$name" || { rm -f "$run/pids/$name.pid"; return 0; }
  local pid; pid=$(cat "$run/pids/$name.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 150); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then echo "$name (pid $pid) did not stop within 15s; sending SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$run/pids/$name.pid"
  echo "stopped $name"
}

status() {
  local rc=0
  if alive redis; then echo "redis            pid $(cat "$run/pids/redis.pid")  127.0.0.1:$redis_port"; else echo "redis            not running"; rc=1; fi
  if alive smtp; then echo "smtp             pid $(cat "$run/pids/smtp.pid")  127.0.0.1:$smtp_port  mail in $run/mail"; else echo "smtp             not running"; rc=1; fi
  for spec in "${engines[@]}"; do
    IFS=: read -r e g m <<<"$spec"
    if alive "$e"; then
      state=$("$build/tools/healthcheck/ecrm-healthcheck" --target=127.0.0.1:$g 2>&1 | tail -1)
      printf '%-16s pid %s  grpc 127.0.0.1:%s  metrics http://127.0.0.1:%s/metrics  %s\n' "$e" "$(cat "$run/pids/$e.pid")" "$g" "$m" "$state"
    else
      printf '%-16s not running\n' "$e"; rc=1
    fi
  done
  return $rc
}

start() {
  bash scripts/install-deps.sh
  bash scripts/build.sh
  mkdir -p "$run/logs" "$run/pids" "$data"
  if ! alive redis; then
    nohup redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$data" --save "60 1000" --appendonly no \
      --daemonize no >>"$run/logs/redis.log" 2>&1 &
    echo $! >"$run/pids/redis.pid"
    for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 || { echo "redis did not start:"; tail -5 "$run/logs/redis.log"; exit 1; }
  fi
  if ! alive smtp; then
    mkdir -p "$run/mail"
    rm -f "$run/smtp.port"
    nohup /usr/bin/python3 tests/support/smtp_server.py --dir "$run/mail" --port-file "$run/smtp.port" \
      --port "$smtp_port" >>"$run/logs/smtp.log" 2>&1 &
    echo $! >"$run/pids/smtp.pid"
    for _ in $(seq 1 100); do [ -s "$run/smtp.port" ] && break; sleep 0.1; done
    [ -s "$run/smtp.port" ] || { echo "the SMTP server did not start:"; tail -5 "$run/logs/smtp.log"; exit 1; }
  fi
  # The key that signs broadcast's open, click and unsubscribe links: made once, kept with the data
  # (links in mail already sent must still verify after a restart).
  if [ ! -s "$data/tracking-secret" ]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$data/tracking-secret")
  fi
  ECRM_TRACKING_SECRET=$(cat "$data/tracking-secret")
  export ECRM_TRACKING_SECRET
  # Each engine is told where its peers are (the addresses of the table above).
  local peers="--infostore-address=127.0.0.1:50051"
  declare -A extra=(
    [infostore]="--privacy-engines=segmentation=127.0.0.1:50052,personalisation=127.0.0.1:50053,broadcast=127.0.0.1:50054,transaction=127.0.0.1:50055"
    [segmentation]="$peers --broadcast-address=127.0.0.1:50054 --scores-interval=${ECRM_SCORES_INTERVAL:-15s}"
    [personalisation]="$peers --transaction-address=127.0.0.1:50055 --segmentation-address=127.0.0.1:50052 --catalogue-refresh=5s"
    [broadcast]="$peers --personalisation-address=127.0.0.1:50053 --segmentation-address=127.0.0.1:50052 --smtp-url=smtp://127.0.0.1:$smtp_port --smtp-from=shop@shop.example --smtp-from-name=ecrm-demo-shop --http-address=127.0.0.1:8080"
    [transaction]="$peers"
  )
  for spec in "${engines[@]}"; do
    IFS=: read -r e g m <<<"$spec"
    alive "$e" && continue
    # shellcheck disable=SC2086 # the extra flags are words
    nohup "$build/services/ecrm-$e" --grpc-address=127.0.0.1:$g --metrics-address=127.0.0.1:$m \
      --database-url="sqlite://$data/$e.db" --redis-url="redis://127.0.0.1:$redis_port" ${extra[$e]} \
      >>"$run/logs/$e.log" 2>&1 &
    echo $! >"$run/pids/$e.pid"
  done
  for spec in "${engines[@]}"; do
    IFS=: read -r e g m <<<"$spec"
    if ! "$build/tools/healthcheck/ecrm-healthcheck" --target=127.0.0.1:$g --wait=30s >/dev/null; then
      echo "ecrm-$e did not become healthy; last log lines:"; tail -5 "$run/logs/$e.log"; exit 1
    fi
  done
  echo
  status
  echo
  echo "Logs: $run/logs   Data: $data   Mail: $run/mail"
  echo "Operate it with: $build/tools/ecrmctl/ecrmctl --help"
  echo "Stop with: scripts/run-suite.sh stop"
}

case "${1:-start}" in
  start) start ;;
  demo)
    start
    echo
    shift
    "$build/tools/ecrmctl/ecrmctl" demo --mail-dir="$run/mail" "$@" ;;
  stop)
    for spec in "${engines[@]}"; do stop_one "${spec%%:*}"; done
    stop_one smtp
    stop_one redis ;;
  status) status ;;
  *) echo "usage: $0 [start|demo|stop|status]" >&2; exit 2 ;;
esac
