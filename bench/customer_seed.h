// Seeding customers and events through a running ecrm-infostore, shared by the benchmarks that
// need them (ecrm-infostore-bench, ecrm-segmentation-latency-bench, ecrm-sense-respond-bench).
#pragma once

#include <grpcpp/client_context.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"

namespace ecrm::bench {

// A client context with a deadline `timeout` from now.
inline std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

// Runs call(0) … call(n - 1) on `threads` threads; at the first failure prints it and exits 1.
inline void Parallel(int64_t n, int threads, const std::function<grpc::Status(int64_t)>& call) {
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t i = next++; i < n && !failed; i = next++) {
        grpc::Status s = call(i);
        if (!s.ok() && !failed.exchange(true)) {
          std::fprintf(stderr, "seeding item %lld: %s\n", static_cast<long long>(i), s.error_message().c_str());
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  if (failed) std::exit(1);
}

// One RecordEvents stream of the one batch `req`: its acknowledgement is the stream's status.
inline grpc::Status RecordBatch(infostore::v1::InformationStore::Stub& stub,
                                const infostore::v1::RecordEventsRequest& req, absl::Duration timeout) {
  auto ctx = Context(timeout);
  infostore::v1::RecordEventsResponse resp;
  auto writer = stub.RecordEvents(ctx.get(), &resp);
  writer->Write(req);
  writer->WritesDone();
  return writer->Finish();
}

// Grants customer `id` marketing on `channel`, as given at `source`.
inline grpc::Status GrantMarketing(infostore::v1::InformationStore::Stub& stub, const std::string& id,
                                   common::v1::Channel channel, common::v1::Touchpoint source) {
  infostore::v1::UpdateConsentRequest req;
  req.mutable_customer()->set_customer_id(id);
  req.set_channel(channel);
  req.set_purpose(common::v1::PURPOSE_MARKETING);
  req.set_status(infostore::v1::CONSENT_STATUS_GRANTED);
  req.set_source(source);
  req.set_evidence("bench");
  infostore::v1::Customer out;
  return stub.UpdateConsent(Context(absl::Seconds(30)).get(), req, &out);
}

// Customers 0 … n - 1 on `threads` threads: customer i is UpsertCustomer(request(i)), then, when
// email_consent(i), granted email marketing as given at `source`. Their ids, in order; exits at
// the first failure.
inline std::vector<std::string> SeedCustomers(
    infostore::v1::InformationStore::Stub& stub, int64_t n, int threads,
    const std::function<infostore::v1::UpsertCustomerRequest(int64_t)>& request,
    const std::function<bool(int64_t)>& email_consent, common::v1::Touchpoint source) {
  std::vector<std::string> ids(static_cast<size_t>(n));
  Parallel(n, threads, [&](int64_t i) {
    infostore::v1::UpsertCustomerResponse resp;
    grpc::Status s = stub.UpsertCustomer(Context(absl::Seconds(30)).get(), request(i), &resp);
    if (s.ok() && email_consent(i)) s = GrantMarketing(stub, resp.customer().id(), common::v1::CHANNEL_EMAIL, source);
    if (s.ok()) ids[static_cast<size_t>(i)] = resp.customer().id();
    return s;
  });
  return ids;
}

}  // namespace ecrm::bench
