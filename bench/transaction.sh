#!/usr/bin/env bash
# The transaction engine's figures (issue 4), each measured ECRM_BENCH_RUNS times (default 3)
# with the gRPC health baseline of the same service in the same run, on SQLite and PostgreSQL.
# Starts its own PostgreSQL and ecrm-transaction instances on free loopback ports.
#   bench/transaction.sh [results.jsonl]      ECRM_BENCH_DURATION (10s) per load
# ECRM_TRANSACTION_BIN=/path/ecrm-transaction measures another build (e.g. a baseline's);
# ECRM_BENCH_BACKENDS="postgres" measures one store only.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${ECRM_BENCH_DURATION:-10s}
runs=${ECRM_BENCH_RUNS:-3}
source bench/lib.sh
bench_setup ecrm-bench "${1:-}"
trap 'bench_cleanup; rm -rf "$work"' EXIT
load() { "$B/tools/loadgen/ecrm-load" --target="$1" --duration=$dur --warmup=2s --connections=2 --json "${@:2}"; }
# Enough seeded carts for a closed-loop Checkout run of warm-up + duration at up to 6,000/s
# (a run that empties them reports FAILED_PRECONDITION for the rest and a capped rate).
secs=${dur%s}
carts=$(( (secs + 2) * 6000 ))

echo "# $(date -u +%FT%TZ) $(nproc) cores, $dur x $runs runs; results in $out" >&2
start_postgres "$work"
pg_port=$REPLY
"$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres transaction

for backend in ${ECRM_BENCH_BACKENDS:-sqlite postgres}; do
  if [ $backend = sqlite ]; then url="sqlite://$work/transaction.db"; else url="postgresql://postgres@127.0.0.1:$pg_port/transaction"; fi
  start_service "${ECRM_TRANSACTION_BIN:-$B/services/ecrm-transaction}" --database-url="$url" --redis-url=
  target=$REPLY
  health=(); checkout=(); checkout_p99=(); add_p99=()
  for _ in $(seq "$runs"); do
    health+=("$(load "$target" --workload=health --rate=0 --concurrency=64 | json_field achieved_rate | cut -d. -f1)")
    r=$(load "$target" --workload=transaction.checkout --rate=0 --concurrency=8 --population=$carts)
    emit "$r"
    checkout+=("$(echo "$r" | json_field ok | awk -v s="$secs" '{ printf "%d", $1 / s }')")
    r=$(load "$target" --workload=transaction.checkout --rate=500 --concurrency=256 --population=$(( (secs + 2) * 500 + 100 )))
    emit "$r"
    checkout_p99+=("$(echo "$r" | json_field p99)")
    r=$(load "$target" --workload=transaction.add_cart_item --rate=2000 --concurrency=256)
    emit "$r"
    add_p99+=("$(echo "$r" | json_field p99)")
  done
  runs_json "${backend}_health_saturation" "req/s" "${health[@]}"
  runs_json "${backend}_checkout_8_clients" "orders/s" "${checkout[@]}"
  runs_json "${backend}_checkout_p99_at_500" "ms" "${checkout_p99[@]}"
  runs_json "${backend}_add_cart_item_p99_at_2000" "ms" "${add_p99[@]}"
done

cat <<SUMMARY

measurement                                 SQLite                PostgreSQL            goal
health check saturation (baseline)          $(med sqlite_health_saturation) req/s        $(med postgres_health_saturation) req/s
Checkout, 8 clients (orders/s)              $(med sqlite_checkout_8_clients) ($(ratio sqlite_checkout_8_clients sqlite_health_saturation))     $(med postgres_checkout_8_clients) ($(ratio postgres_checkout_8_clients postgres_health_saturation))      >= 1,000 (SQLite)
Checkout p99 at 500 orders/s                $(med sqlite_checkout_p99_at_500) ms             $(med postgres_checkout_p99_at_500) ms            <= 10 ms
AddCartItem p99 at 2,000/s                  $(med sqlite_add_cart_item_p99_at_2000) ms             $(med postgres_add_cart_item_p99_at_2000) ms            <= 2 ms
SUMMARY
