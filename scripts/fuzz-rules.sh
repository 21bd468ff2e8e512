#!/usr/bin/env bash
# Fuzzes the rule language (tests/fuzz/rules_fuzz.cc) with libFuzzer under ASan and UBSan.
# Usage: scripts/fuzz-rules.sh [seconds] [extra libFuzzer flags…]   (default 60 seconds)
# Built with Debian's clang++ straight from the library's sources into ./build-fuzz (or
# $ECRM_FUZZ_DIR), apart from the main g++ build. New inputs are kept in build-fuzz/corpus;
# the seeds in tests/fuzz/rules_corpus are read, never written. A crash leaves its input in
# build-fuzz/crash-* and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
out=${ECRM_FUZZ_DIR:-build-fuzz}
mkdir -p "$out/corpus"
absl_libs=$(pkg-config --libs absl_statusor absl_status absl_strings absl_str_format absl_time absl_raw_hash_set \
  absl_hash)
sources=(libs/rules/src/*.cc tests/fuzz/rules_fuzz.cc)
binary="$out/rules_fuzz"
if [ ! -x "$binary" ] || [ -n "$(find "${sources[@]}" libs/rules/include libs/rules/src -newer "$binary" -print -quit)" ]; then
  echo "building $binary"
  clang++ -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Ilibs/rules/include -Ilibs/status/include -Ilibs/rules/src \
    "${sources[@]}" $absl_libs -o "$binary"
fi
exec "$binary" -max_total_time="$seconds" -max_len=4096 -timeout=10 -dict=tests/fuzz/rules.dict \
  -artifact_prefix="$out/" -print_final_stats=1 "$@" "$out/corpus" tests/fuzz/rules_corpus
