#include "ecrm/server/grpc_status.h"

namespace ecrm::server {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // UNKNOWN is never sent: an unclassified failure is INTERNAL.
  auto code = status.code() == absl::StatusCode::kUnknown ? grpc::StatusCode::INTERNAL
                                                          : static_cast<grpc::StatusCode>(status.code());
  return grpc::Status(code, std::string(status.message()));
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace ecrm::server
