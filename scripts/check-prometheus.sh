#!/usr/bin/env bash
# Checks deploy/prometheus with promtool (Debian's `prometheus` package, in install-deps.sh):
# both configurations, the rule files, and the rules' unit tests (deploy/prometheus/tests:
# every alert firing and not). Exits 77 — reported as skipped by ctest — only when promtool is
# not installed.
set -euo pipefail
cd "$(dirname "$0")/../deploy/prometheus"
if ! command -v promtool >/dev/null; then
  echo "SKIPPED: promtool is not installed (Debian package prometheus; scripts/install-deps.sh installs it)"
  exit 77
fi
# prometheus.k8s.yml is left out: Debian builds Prometheus without Kubernetes service discovery,
# so its promtool refuses kubernetes_sd_configs (scripts/check-deploy-yaml.py parses it).
promtool check config prometheus.yml prometheus.local.yml
promtool check rules rules/*.yml
promtool test rules tests/*.yml
