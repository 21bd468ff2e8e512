#!/usr/bin/env bash
# Segmentation at 10 million customers (issue 14): ecrm-segmentation-bench run ECRM_BENCH_RUNS
# times (default 3), one process per run, each loading ECRM_SEG_CUSTOMERS (10,000,000) seeded
# customers and measuring load rate, memory, the 5-predicate preview (median of 5), the 100
# segments through EvaluatePopulation and through Segments, FeedConsumer::Apply on SQLite
# (ECRM_SEG_FEED_CUSTOMERS, 100,000 fresh customers), and the uint32 scan baseline. Medians of
# the runs' figures, then a summary.
#   bench/segmentation.sh [results.jsonl]
# ECRM_BASE_SEG_BENCH=/path/to/an/older/ecrm-segmentation-bench: that build too, the two taking
# turns run by run (before/after in the same session). ECRM_BENCH_LOCK=/tmp/ecrm-build.lock:
# hold that lock during each run (so that nobody builds meanwhile), releasing it between runs.
# ECRM_SEG_THREADS (2): the head build also measures the preview and segments on this many
# threads (0: not).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${ECRM_BENCH_RUNS:-3}
customers=${ECRM_SEG_CUSTOMERS:-10000000}
feed=${ECRM_SEG_FEED_CUSTOMERS:-100000}
threads=${ECRM_SEG_THREADS:-2}
base=${ECRM_BASE_SEG_BENCH:-}
source bench/lib.sh
bench_setup ecrm-segbench "${1:-}"
trap 'rm -rf "$work"' EXIT
head_bin=$B/bench/ecrm-segmentation-bench
builds=(head)
[ -n "$base" ] && builds=(base head)
lock() { if [ -n "${ECRM_BENCH_LOCK:-}" ]; then flock "$ECRM_BENCH_LOCK" "$@"; else "$@"; fi; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $customers customers x $runs runs (${builds[*]}); results in $out" >&2
for round in $(seq "$runs"); do
  order=("${builds[@]}")
  [ ${#builds[@]} -eq 2 ] && [ $((round % 2)) -eq 0 ] && order=(head base)
  for build in "${order[@]}"; do
    args=(--customers="$customers" --runs=5 --segment-runs=1 --through-segments --feed-customers="$feed" --dir="$work")
    if [ "$build" = base ]; then bin=$base; else bin=$head_bin; [ "$threads" -gt 1 ] && args+=(--more-threads="$threads"); fi
    echo "# round $round: $build" >&2
    lock "$bin" "${args[@]}" 2>>"$work/bench.log" | sed "s/^{/{\"build\":\"$build\",\"round\":$round,/" >>"$work/raw.jsonl"
  done
done
cp "$work/raw.jsonl" "${out%.jsonl}.raw.jsonl" 2>/dev/null || true

# One line per build and figure: every run's value and their median.
# field FILTER BUILD BENCH: the values of FILTER (a jq expression) for that build and bench.
values() { jq -r --arg b "$2" --arg n "$3" "select(.build == \$b and .bench == \$n) | $1" "$work/raw.jsonl"; }
for build in "${builds[@]}"; do
  for name in baseline_scan_uint32 load_apply rss_per_customer preview_5_predicates segments_population \
    segments_population_slowest segments_create segments_refill feed_apply_sqlite \
    preview_5_predicates_threads$threads segments_population_threads$threads; do
    mapfile -t v < <(values .median "$build" "segmentation_$name")
    [ ${#v[@]} -gt 0 ] || continue
    unit=$(values .unit "$build" "segmentation_$name" | head -1)
    runs_json "${build}_$name" "$unit" "${v[@]}" >/dev/null
  done
  mapfile -t v < <(values .features_bytes_per_customer "$build" segmentation_rss_per_customer)
  runs_json "${build}_features_memory_bytes_per_customer" bytes "${v[@]}" >/dev/null
  mapfile -t v < <(values '.peak_rss / 1048576 | floor' "$build" segmentation_rss_per_customer)
  runs_json "${build}_peak_rss" MiB "${v[@]}" >/dev/null
done
# The answers must not differ between builds (members and checksums).
answers() {  # (checksums are 64-bit: read as text, jq would round them)
  grep -E '"bench":"segmentation_(preview_5_predicates|segments_population|segments_refill)"' "$work/raw.jsonl" |
    sed -E 's/.*"build":"([a-z]+)".*"bench":"([a-z_0-9]+)".*"members":([0-9]+).*"checksum":([0-9]+).*/\1 \2 \3 \4/' | sort -u
}
answers >&2

row() {  # row LABEL NAME UNIT
  local b="—" r=""
  [ -n "$base" ] && { b="$(med "base_$2") $3"; r=$(ratio "head_$2" "base_$2"); }
  printf '%-52s %-22s %-22s %s\n' "$1" "$(med "head_$2") $3" "$b" "$r"
}
echo
printf '%-52s %-22s %-22s %s\n' "measurement ($customers customers, medians of $runs)" head base head/base
row "baseline: scan of $customers uint32" baseline_scan_uint32 ms
row "load through SetCustomer/AddEvent" load_apply changes/s
row "RSS per customer" rss_per_customer B
row "Features::MemoryBytes() per customer" features_memory_bytes_per_customer B
row "peak RSS" peak_rss MiB
row "preview, 5 predicates (median of 5)" preview_5_predicates ms
row "100 segments, EvaluatePopulation" segments_population ms
row "slowest of the 100" segments_population_slowest ms
row "100 segments created through Segments" segments_create ms
row "Segments::Refill of the 100" segments_refill ms
row "FeedConsumer::Apply on SQLite ($feed customers)" feed_apply_sqlite changes/s
if [ "$threads" -gt 1 ]; then
  row "preview on $threads threads" preview_5_predicates_threads$threads ms
  row "100 segments on $threads threads" segments_population_threads$threads ms
fi
