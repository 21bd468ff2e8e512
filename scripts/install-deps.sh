#!/usr/bin/env bash
# The one list of ecrm's build, test and run dependencies (Debian bookworm, apt only).
# Idempotent: re-running it installs nothing new. README, .ci/run and the Dockerfile call it.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache git clang-format
  # RPC and serialisation
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev libprotoc-dev protobuf-compiler libabsl-dev
  # storage and cache
  libsqlite3-dev sqlite3 libpq-dev postgresql postgresql-contrib
  libhiredis-dev redis-server redis-tools
  # observability, HTTP, bitmaps, identity
  prometheus-cpp-dev prometheus libcurl4-openssl-dev curl libroaring-dev libphonenumber-dev
  nlohmann-json3-dev
  # tests
  catch2 procps
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start servers on install; ecrm starts its own on free ports.
for svc in redis-server postgresql prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
echo "install-deps: done"
