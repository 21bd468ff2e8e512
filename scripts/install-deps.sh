#!/usr/bin/env bash
# The one list of ecrm's build, test and run dependencies (Debian bookworm, apt only).
# Idempotent: re-running it installs nothing new. README, .ci/run and the Dockerfile call it.
#   scripts/install-deps.sh            everything to build, test and run
#   scripts/install-deps.sh --runtime  only the shared libraries the binaries need (container image)
set -euo pipefail

runtime_packages=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libhiredis0.14 libprometheus-cpp-core1.0
  libprometheus-cpp-pull1.0 libsqlite3-0 libpq5 libcurl4 libroaring0 libphonenumber8 libnlopt0 ca-certificates
  libcpp-httplib0.11 libicu72 libopendkim11
)

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache git clang-format
  # RPC and serialisation
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev libprotoc-dev protobuf-compiler libabsl-dev libssl-dev
  # storage and cache
  libsqlite3-dev sqlite3 libpq-dev postgresql postgresql-contrib
  libhiredis-dev redis-server redis-tools
  # observability, HTTP, bitmaps, identity
  prometheus-cpp-dev prometheus libcurl4-openssl-dev curl libroaring-dev libphonenumber-dev
  nlohmann-json3-dev
  # tests; fuzzing (scripts/fuzz-rules.sh: clang's libFuzzer, ASan and UBSan)
  catch2 procps clang libclang-rt-14-dev
  # numerical optimisation (segmentation's lifetime-value fits)
  libnlopt-dev
  # personalisation's templates (mustache, ICU formatting); broadcast's HTTP endpoints, DKIM, and
  # the SMTP server its tests send to
  libmstch-dev libicu-dev libcpp-httplib-dev libopendkim-dev python3-aiosmtpd
  # the deployment check (scripts/check-deploy-yaml.py parses docker-compose and deploy/k8s)
  python3-yaml
  # Postfix's smtp-sink (/usr/sbin/smtp-sink), the fast SMTP receiver of bench/broadcast-smtp.sh;
  # installed unconfigured (preseeded below), no mail daemon runs
  postfix
  # benchmarks (bench/shutdown.sh measures Python grpcio clients too)
  python3-grpcio
)

if [ "${1:-}" = "--runtime" ]; then
  packages=("${runtime_packages[@]}")
fi

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
# Postfix asks what kind of mail system this is; none: it installs without configuring a daemon.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "${1:-}" = "--runtime" ] && $SUDO rm -rf /var/lib/apt/lists/*
# The Debian packages start servers on install; ecrm starts its own on free ports.
for svc in redis-server postgresql prometheus postfix; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
# Only smtp-sink is wanted: no Postfix mail system left running (without systemd too).
if command -v postfix >/dev/null && $SUDO postfix status >/dev/null 2>&1; then
  $SUDO postfix stop || true
fi
echo "install-deps: done"
