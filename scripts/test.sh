#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test with ctest.
# Tests start their own Redis and PostgreSQL servers on free ports; nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
build_dir=${ECRM_BUILD_DIR:-build}
cd "$build_dir"
ctest -j "${ECRM_JOBS:-2}" --output-on-failure --timeout 600
