#!/usr/bin/env bash
# Reproduces the foundation figures of docs/benchmarks.md on this machine, each measured
# ECRM_BENCH_RUNS times (default 3) for ECRM_BENCH_DURATION (default 10s), with its baseline in
# the same run. Starts its own Redis, PostgreSQL and ecrm-infostore on free loopback ports and
# stops them at the end. Prints one JSON line per measurement, then a summary of medians.
#   bench/run.sh [results.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dur=${ECRM_BENCH_DURATION:-10s}
secs=${dur%s}
runs=${ECRM_BENCH_RUNS:-3}
source bench/lib.sh
bench_setup ecrm-bench "${1:-}"
trap 'bench_cleanup; rm -rf "$work/pg" "$work"/*.db*' EXIT

echo "# $(date -u +%FT%TZ) $(nproc) cores, duration $dur x $runs runs; results in $out" >&2

# --- gRPC health baseline ------------------------------------------------------------------
start_service "$B/services/ecrm-infostore" --database-url="sqlite://$work/infostore.db" --redis-url=
target=$REPLY
sat=(); p99=()
for _ in $(seq "$runs"); do
  j=$("$B/tools/loadgen/ecrm-load" --target=$target --rate=0 --concurrency=64 --connections=2 \
      --duration=$dur --warmup=2s --json)
  sat+=("$(echo "$j" | sed -E 's/.*"achieved_rate":([0-9.]+).*/\1/' | cut -d. -f1)")
  j=$("$B/tools/loadgen/ecrm-load" --target=$target --rate=2000 --concurrency=256 --connections=2 \
      --duration=$dur --warmup=2s --json)
  p99+=("$(echo "$j" | sed -E 's/.*"p99":([0-9.]+).*/\1/')")
done
runs_json health_saturation "req/s" "${sat[@]}"
runs_json health_p99_at_2000qps "ms" "${p99[@]}"

# --- profile cache vs redis-benchmark --------------------------------------------------------
start_redis "$work"
rp=$REPLY
redis-benchmark -p "$rp" -c 1 -n 100000 -r 100000 -d 1024 -t set -q >/dev/null
# libs/cache and redis-benchmark alternate run by run, so machine noise falls on both alike.
rb=(); rbp=(); populate=true
for _ in $(seq "$runs"); do
  "$B/bench/ecrm-cache-bench" --redis-url=redis://127.0.0.1:$rp --duration=$dur --runs=1 --populate=$populate \
    >>"$work/cache.jsonl"
  populate=false
  rb+=("$(redis-benchmark -p "$rp" -c 1 -n $((secs * 13000)) -r 100000 -d 1024 -t get --csv | tail -1 | cut -d, -f2 | tr -d '"' | cut -d. -f1)")
  rbp+=("$(redis-benchmark -p "$rp" -c 1 -P 100 -n $((secs * 300000)) -r 100000 -d 1024 -t get --csv | tail -1 | cut -d, -f2 | tr -d '"' | cut -d. -f1)")
done
for b in cache_get cache_multiget_100; do
  vals=($(grep "\"bench\":\"$b\"" "$work/cache.jsonl" | sed -E 's/.*"runs":\[([0-9]+)\].*/\1/'))
  runs_json "$b" "$([ $b = cache_get ] && echo gets/s || echo keys/s)" "${vals[@]}"
done
runs_json redis_benchmark_get_c1 "gets/s" "${rb[@]}"
runs_json redis_benchmark_get_c1_pipeline100 "keys/s" "${rbp[@]}"

# --- SQLite: libs/sql vs the raw C API -------------------------------------------------------
for mode in insert lookup; do
  "$B/bench/ecrm-sql-bench" --url="sqlite://$work/bench.db" --mode=$mode --impl=lib,raw --duration=$dur \
    --runs="$runs" | tee -a "$out"
done

# --- PostgreSQL: libs/sql vs raw libpq and pgbench -S ------------------------------------------
start_postgres "$work"
pp=$REPLY
pg="postgresql://postgres@127.0.0.1:$pp/postgres"
"$pg_bin/pgbench" -h 127.0.0.1 -p "$pp" -U postgres -i -s 10 -q postgres >/dev/null 2>&1
"$B/bench/ecrm-sql-bench" --url="$pg" --mode=insert --impl=lib,raw --runs="$runs" | tee -a "$out"
for c in 1 4; do
  "$B/bench/ecrm-sql-bench" --url="$pg" --mode=lookup --impl=lib --threads=$c --rows=1000000 --duration=$dur \
    --runs="$runs" --query='SELECT abalance FROM pgbench_accounts WHERE aid = $1' | tee -a "$out"
  tps=()
  for _ in $(seq "$runs"); do
    tps+=("$("$pg_bin/pgbench" -h 127.0.0.1 -p "$pp" -U postgres -S -M prepared -c $c -j $(( c > 1 ? 2 : 1 )) \
      -T "$secs" postgres 2>/dev/null | sed -nE 's/^tps = ([0-9]+).*/\1/p')")
  done
  runs_json "pgbench_select_c$c" "lookups/s" "${tps[@]}"
done

# --- summary -------------------------------------------------------------------------------
cat <<SUMMARY

measurement                                   median        baseline (median)              ratio
health check saturation (closed loop, 64)     $(med health_saturation) req/s
health check p99 at 2,000 QPS (open loop)     $(med health_p99_at_2000qps) ms
profile-cache GET, 1 client                   $(med cache_get) /s     redis-benchmark GET $(med redis_benchmark_get_c1) /s   $(ratio cache_get redis_benchmark_get_c1)
profile-cache multi-get (100 per call)        $(med cache_multiget_100) keys/s  redis-benchmark -P 100 $(med redis_benchmark_get_c1_pipeline100)  $(ratio cache_multiget_100 redis_benchmark_get_c1_pipeline100)
SQLite batched insert                         $(med sqlite_insert_lib) rows/s  raw sqlite3 $(med sqlite_insert_raw)   $(ratio sqlite_insert_lib sqlite_insert_raw)
SQLite primary-key lookup, 1 client           $(med sqlite_lookup_lib_c1) /s  raw sqlite3 $(med sqlite_lookup_raw_c1)   $(ratio sqlite_lookup_lib_c1 sqlite_lookup_raw_c1)
PostgreSQL batched insert                     $(med postgres_insert_lib) rows/s  raw libpq $(med postgres_insert_raw)   $(ratio postgres_insert_lib postgres_insert_raw)
PostgreSQL primary-key lookup, 1 client       $(med postgres_lookup_lib_c1) /s  pgbench -S $(med pgbench_select_c1)   $(ratio postgres_lookup_lib_c1 pgbench_select_c1)
PostgreSQL primary-key lookup, 4 clients      $(med postgres_lookup_lib_c4) /s  pgbench -S -c4 $(med pgbench_select_c4)   $(ratio postgres_lookup_lib_c4 pgbench_select_c4)
SUMMARY
