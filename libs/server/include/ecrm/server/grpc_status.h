// absl::Status ⇄ grpc::Status for the thin handlers. The codes share numbering.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ecrm::server {

grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace ecrm::server
