// CustomerDataClient over gRPC, one per engine named by --privacy-engines.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "clients/customer_data_client.h"

namespace ecrm::infostore {

struct PrivacyPeer {
  std::string engine;   // e.g. "transaction"
  std::string address;  // host:port
};

// Parses "transaction=127.0.0.1:50055,broadcast=127.0.0.1:50054".
absl::StatusOr<std::vector<PrivacyPeer>> ParsePrivacyPeers(absl::string_view spec);

std::vector<std::unique_ptr<CustomerDataClient>> GrpcCustomerDataClients(const std::vector<PrivacyPeer>& peers);

}  // namespace ecrm::infostore
