#!/usr/bin/env bash
# Configures and builds ecrm into ./build (or $ECRM_BUILD_DIR) with ccache and -j2.
# Extra arguments go to cmake's configure step, e.g. -DECRM_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${ECRM_BUILD_DIR:-build}
# Paths relative to the checkout, so a fresh clone elsewhere (CI) reuses the same ccache entries.
export CCACHE_BASEDIR="$(pwd)" CCACHE_NOHASHDIR=true
jobs=${ECRM_JOBS:-2}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${ECRM_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs"
