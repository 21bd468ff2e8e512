// Data-subject export and erasure across engines: this engine's own part through
// CustomerStore, every other configured engine through its ecrm.privacy.v1.CustomerData.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "customer_store.h"
#include "ecrm/privacy/v1/privacy.grpc.pb.h"

namespace ecrm::infostore {

struct PrivacyPeer {
  std::string engine;   // e.g. "transaction"
  std::string address;  // host:port
};

// Parses "transaction=127.0.0.1:50055,broadcast=127.0.0.1:50054".
absl::StatusOr<std::vector<PrivacyPeer>> ParsePrivacyPeers(absl::string_view spec);

class PrivacyFanout {
 public:
  PrivacyFanout(CustomerStore& store, const std::vector<PrivacyPeer>& peers, absl::Duration timeout);

  absl::StatusOr<v1::ExportCustomerResponse> Export(const common::v1::CustomerRef& ref);
  // Other engines first; this engine's data is erased only once every engine has erased, so a
  // retry with the same request_id can still find the customer.
  absl::StatusOr<v1::EraseCustomerResponse> Erase(const v1::EraseCustomerRequest& request);

 private:
  struct Peer {
    std::string engine;
    std::unique_ptr<privacy::v1::CustomerData::Stub> stub;
  };
  CustomerStore& store_;
  std::vector<Peer> peers_;
  absl::Duration timeout_;
};

}  // namespace ecrm::infostore
