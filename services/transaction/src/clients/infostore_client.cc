#include "clients/infostore_client.h"

#include <grpcpp/client_context.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/log/log.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/grpc_status.h"

namespace ecrm::transaction {

absl::StatusOr<std::string> InfostoreResolver::Resolve(const common::v1::CustomerRef& ref) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  infostore::v1::GetCustomerRequest req;
  *req.mutable_customer() = ref;
  infostore::v1::Customer customer;
  grpc::Status s = infostore::v1::InformationStore::NewStub(channel_)->GetCustomer(&ctx, req, &customer);
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return customer.id();
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(
          absl::StrCat("customer.identifier: no customer has this identifier (", s.error_message(), ")"));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(absl::StrCat("customer.", s.error_message()));
    default:
      return absl::UnavailableError(
          absl::StrCat("information store: resolving the customer failed: ", s.error_message()));
  }
}

namespace {

// The information store refused the data itself: retrying the same events cannot help.
bool Permanent(grpc::StatusCode code) {
  return code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::NOT_FOUND ||
         code == grpc::StatusCode::FAILED_PRECONDITION || code == grpc::StatusCode::OUT_OF_RANGE;
}

}  // namespace

OutboxRelay::OutboxRelay(Outbox& outbox, std::shared_ptr<grpc::Channel> channel, RelayOptions options,
                         RelayMetrics& metrics)
    : outbox_(outbox), channel_(std::move(channel)), options_(options), metrics_(metrics), thread_([this] { Run(); }) {}

OutboxRelay::~OutboxRelay() { Stop(); }

void OutboxRelay::Notify() {
  {
    std::lock_guard lock(mu_);
    notified_ = true;
  }
  cv_.notify_all();
}

void OutboxRelay::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    // A call waiting for an unreachable information store would hold shutdown for its whole
    // deadline; its events stay in the outbox for the next start.
    if (sending_ != nullptr) sending_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

grpc::Status OutboxRelay::Send(const std::vector<OutboxEvent>& events, size_t begin, size_t end) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, options_.timeout);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::CANCELLED, "the relay is stopping");
    sending_ = &ctx;
  }
  absl::Cleanup done = [this] {
    std::lock_guard lock(mu_);
    sending_ = nullptr;
  };
  infostore::v1::RecordEventsResponse resp;
  auto writer = infostore::v1::InformationStore::NewStub(channel_)->RecordEvents(&ctx, &resp);
  infostore::v1::RecordEventsRequest req;
  for (size_t i = begin; i < end; ++i) *req.add_events() = events[i].event;
  writer->Write(req);
  writer->WritesDone();
  return writer->Finish();
}

bool OutboxRelay::DeliverPending() {
  while (true) {
    absl::StatusOr<std::vector<OutboxEvent>> events = outbox_.PendingEvents(options_.batch_size);
    if (!events.ok()) {
      log::Warn("outbox read failed", {{"error", events.status()}});
      return false;
    }
    // A short batch is everything pending; only a full one needs a count.
    if (events->size() < static_cast<size_t>(options_.batch_size)) {
      metrics_.pending.Set(static_cast<double>(events->size()));
    } else if (absl::StatusOr<int64_t> n = outbox_.PendingCount(); n.ok()) {
      metrics_.pending.Set(static_cast<double>(*n));
    }
    if (events->empty()) return true;
    grpc::Status s = Send(*events, 0, events->size());
    if (!s.ok() && Permanent(s.error_code())) {
      // Find the event at fault: deliver one at a time, parking what is refused.
      for (size_t i = 0; i < events->size(); ++i) {
        grpc::Status one = Send(*events, i, i + 1);
        if (one.ok()) {
          if (!outbox_.MarkDelivered({(*events)[i].seq}).ok()) return false;
          metrics_.delivered.Increment();
        } else if (Permanent(one.error_code())) {
          log::Error("outbox event refused by the information store; parked",
                     {{"event_id", (*events)[i].event.event_id()}, {"error", one.error_message()}});
          if (!outbox_.MarkFailed((*events)[i].seq, one.error_message()).ok()) return false;
          metrics_.parked.Increment();
        } else {
          metrics_.delivery_failures.Increment();
          return false;
        }
      }
      continue;
    }
    if (!s.ok()) {
      metrics_.delivery_failures.Increment();
      log::Warn("outbox delivery failed; backing off",
                {{"code", static_cast<int>(s.error_code())}, {"error", s.error_message()}});
      return false;
    }
    std::vector<int64_t> seqs;
    for (const OutboxEvent& e : *events) seqs.push_back(e.seq);
    if (absl::Status done = outbox_.MarkDelivered(seqs); !done.ok()) {
      log::Warn("outbox: marking delivered events failed (they will be sent again)", {{"error", done}});
      return false;
    }
    metrics_.delivered.Increment(static_cast<double>(seqs.size()));
  }
}

void OutboxRelay::Run() {
  absl::Duration backoff = options_.min_backoff;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    notified_ = false;
    lock.unlock();
    const bool ok = DeliverPending();
    lock.lock();
    absl::Duration wait = options_.poll;
    if (ok) {
      backoff = options_.min_backoff;
    } else {
      wait = backoff;
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    // After a failure only the backoff (or stopping) ends the wait, not new events.
    cv_.wait_for(lock, absl::ToChronoNanoseconds(wait), [&] { return stopping_ || (ok && notified_); });
  }
}

}  // namespace ecrm::transaction
