// The information store as the broadcast engine's domain needs it (no gRPC here:
// infostore_grpc.h is the real one; tests use fakes): a customer's profile on a cache miss, and
// the consent a one-click unsubscribe withdraws. (Events reach it through libs/outbox's EventSink.)
#pragma once

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/common/v1/common.pb.h"
#include "ecrm/infostore/v1/infostore.pb.h"

namespace ecrm::broadcast {

class CustomerDirectory {
 public:
  virtual ~CustomerDirectory() = default;
  // The customer (merged ids redirect to the survivor); NOT_FOUND for no such customer,
  // UNAVAILABLE when the information store did not answer by `deadline`.
  virtual absl::StatusOr<infostore::v1::Customer> GetCustomer(const common::v1::CustomerRef& ref,
                                                              absl::Time deadline) = 0;
};

class ConsentUpdater {
 public:
  virtual ~ConsentUpdater() = default;
  // Records a consent decision (InformationStore.UpdateConsent). NOT_FOUND for no such customer,
  // INVALID_ARGUMENT for a bad request, UNAVAILABLE when the information store did not answer by
  // `deadline` (the caller may try again: a repeated decision only adds to the history).
  virtual absl::Status UpdateConsent(const infostore::v1::UpdateConsentRequest& request, absl::Time deadline) = 0;
};

}  // namespace ecrm::broadcast
