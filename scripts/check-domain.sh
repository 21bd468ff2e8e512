#!/usr/bin/env bash
# Fails listing the engines' domain files that include a gRPC header or name a grpc:: type.
# Domain code is every source under services/<engine>/src except the composition root
# (main.cc), the handlers (service.h, service.cc) and the outbound clients (clients/): it is
# tested in-process with fakes and never sees gRPC (docs/architecture.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard 'services/*/src/*.h' 'services/*/src/*.cc' \
  'services/*/src/**/*.h' 'services/*/src/**/*.cc' | sort -u |
  grep -Ev '/src/(main\.cc|service\.h|service\.cc)$|/src/clients/')
bad=()
for f in "${files[@]}"; do
  grep -qE '#include\s*[<"](grpc|grpcpp)/|\.grpc\.pb\.h"|grpc::' "$f" && bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "domain code that uses gRPC (move it behind an interface in clients/, or into the handlers):"
  for f in "${bad[@]}"; do grep -nE '#include\s*[<"](grpc|grpcpp)/|\.grpc\.pb\.h"|grpc::' "$f" | sed "s|^|  $f:|"; done
  exit 1
fi
echo "domain check passed: ${#files[@]} files free of gRPC"
