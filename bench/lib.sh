# Helpers shared by the benchmark scripts (sourced, not run). Expects $out (results file) and
# fills $pids with what it starts; call bench_cleanup on exit.
pids=()
pg_dirs=()

# bench_setup NAME [RESULTS]: builds, then sets B (build dir), work (a fresh temp dir) and out
# (the results file, emptied; default $work/results.jsonl). Each script sets its own EXIT trap.
bench_setup() {
  bash scripts/build.sh >/dev/null
  B=$(pwd)/build
  work=$(mktemp -d "/tmp/$1-XXXXXX")
  out=${2:-$work/results.jsonl}
  : >"$out"
}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg=()
[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    ss -ltn | grep -q ":$p " || { echo $p; return; }
  done
}
emit() { echo "$1" | tee -a "$out"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# runs_json NAME UNIT VALUE...: one JSON line with every run and the median; nothing without
# values (a phase not run).
runs_json() { local name=$1 unit=$2; shift 2; local vals=("$@")
  [ ${#vals[@]} -gt 0 ] || return 0
  emit "{\"bench\":\"$name\",\"unit\":\"$unit\",\"runs\":[$(IFS=,; echo "${vals[*]}")],\"median\":$(printf '%s\n' "${vals[@]}" | median)}"; }
# med NAME: the median of NAME's line, or "-" when there is none.
med() { grep "\"bench\":\"$1\"" "$out" | tail -1 | sed -E 's/.*"median":([0-9.]+).*/\1/' | grep . || echo -; }
ratio() { awk -v a="$(med "$1")" -v b="$(med "$2")" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
json_field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }

# The start_* helpers set REPLY (not stdout: a $(…) subshell would lose the pids to clean up).
# start_redis DIR → REPLY=port
start_redis() {
  local port; port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$1" >"$1/redis-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REPLY=$port
}

# start_postgres DIR → REPLY=port (initdb as postgres when root; durable defaults)
start_postgres() {
  local dir=$1 port; port=$(free_port)
  mkdir -p "$dir/pg" && [ "$(id -u)" -eq 0 ] && chown postgres "$dir" "$dir/pg"
  "${as_pg[@]}" "$pg_bin/initdb" -D "$dir/pg" -U postgres --auth=trust --no-instructions >/dev/null
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c shared_buffers=512MB" start >/dev/null
  pg_dirs+=("$dir/pg")
  REPLY=$port
}

# start_service BINARY ARGS... → REPLY=host:port once SERVING (on a port the service picks;
# it reports it through --port-file). SERVICE_PID is its pid, METRICS_ADDR its metrics host:port.
start_service() {
  local bin=$1; shift
  local ports; ports=$(mktemp "$work/ports-XXXXXX")
  rm -f "$ports"
  "$bin" --grpc-address=127.0.0.1:0 --metrics-address=127.0.0.1:0 --port-file="$ports" --log-level=warn "$@" \
    2>>"$work/services.log" &
  pids+=($!)
  SERVICE_PID=$!
  for _ in $(seq 300); do [ -s "$ports" ] && break; kill -0 $SERVICE_PID 2>/dev/null || break; sleep 0.1; done
  local gp; gp=$(sed -n 's/^grpc_port=//p' "$ports" 2>/dev/null)
  [ -n "$gp" ] || { echo "$bin did not start; see $work/services.log" >&2; return 1; }
  METRICS_ADDR=127.0.0.1:$(sed -n 's/^metrics_port=//p' "$ports")
  "$B/tools/healthcheck/ecrm-healthcheck" --target=127.0.0.1:$gp --wait=30s >/dev/null
  REPLY=127.0.0.1:$gp
}

# stop_service PID: SIGTERM and wait (the service drains and exits).
stop_service() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

bench_cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for d in "${pg_dirs[@]}"; do "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true; done
  wait 2>/dev/null || true
}
