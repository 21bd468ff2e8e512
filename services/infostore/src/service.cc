#include "service.h"

#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <google/protobuf/util/time_util.h>
#include "absl/strings/str_cat.h"
#include "ecrm/log/log.h"
#include "ecrm/server/drain.h"
#include "ecrm/server/grpc_status.h"
#include "ecrm/server/offload.h"
#include "ecrm/status/macros.h"

namespace ecrm::infostore {

using server::ToGrpc;

void FeedSignal::Notify() {
  {
    std::lock_guard lock(mu_);
    ++generation_;
  }
  cv_.notify_all();
}

uint64_t FeedSignal::generation() {
  std::lock_guard lock(mu_);
  return generation_;
}

uint64_t FeedSignal::Wait(uint64_t seen, absl::Duration timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return generation_ != seen || draining_.load(); });
  return generation_;
}

void FeedSignal::Drain() {
  draining_.store(true);
  cv_.notify_all();
}

grpc::ServerUnaryReactor* InformationStoreService::ExportCustomer(grpc::CallbackServerContext* ctx,
                                                                  const v1::ExportCustomerRequest* req,
                                                                  v1::ExportCustomerResponse* resp) {
  return Offload(ctx, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::ExportCustomerResponse> r = privacy_.Export(req->customer());
    if (!r.ok()) return r.status();
    *resp = std::move(*r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InformationStoreService::EraseCustomer(grpc::CallbackServerContext* ctx,
                                                                 const v1::EraseCustomerRequest* req,
                                                                 v1::EraseCustomerResponse* resp) {
  return Offload(ctx, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::EraseCustomerResponse> r = privacy_.Erase(*req);
    if (!r.ok()) return r.status();
    *resp = std::move(*r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InformationStoreService::UpsertCustomer(grpc::CallbackServerContext* ctx,
                                                                  const v1::UpsertCustomerRequest* req,
                                                                  v1::UpsertCustomerResponse* resp) {
  return Serve(ctx, req, resp, &CustomerStore::Upsert);
}

grpc::ServerUnaryReactor* InformationStoreService::GetCustomer(grpc::CallbackServerContext* ctx,
                                                               const v1::GetCustomerRequest* req, v1::Customer* resp) {
  // A cache hit is answered right here: one Redis round trip (bounded by the Redis timeout,
  // skipped while the breaker is open) costs less than the hand-off to a worker and back.
  // While shutting down, Offload refuses the call instead.
  if (req->customer().ref_case() == common::v1::CustomerRef::kCustomerId && !executor_.drain().draining()) {
    if (std::optional<v1::Customer> hit = store_.FromCache(req->customer().customer_id())) {
      *resp = std::move(*hit);
      auto* reactor = ctx->DefaultReactor();
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
  }
  return Offload(ctx, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::Customer> r = store_.Get(req->customer());
    if (!r.ok()) return r.status();
    *resp = std::move(*r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InformationStoreService::BatchGetCustomers(grpc::CallbackServerContext* ctx,
                                                                     const v1::BatchGetCustomersRequest* req,
                                                                     v1::BatchGetCustomersResponse* resp) {
  return Offload(ctx, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::BatchGetCustomersResponse> r =
        store_.BatchGet(std::vector<std::string>(req->customer_ids().begin(), req->customer_ids().end()));
    if (!r.ok()) return r.status();
    *resp = std::move(*r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InformationStoreService::UpdateConsent(grpc::CallbackServerContext* ctx,
                                                                 const v1::UpdateConsentRequest* req,
                                                                 v1::Customer* resp) {
  return Serve(ctx, req, resp, &CustomerStore::UpdateConsent);
}

grpc::ServerUnaryReactor* InformationStoreService::GetConsentHistory(grpc::CallbackServerContext* ctx,
                                                                     const v1::GetConsentHistoryRequest* req,
                                                                     v1::GetConsentHistoryResponse* resp) {
  return Serve(ctx, req, resp, &CustomerStore::ConsentHistory);
}

grpc::ServerUnaryReactor* InformationStoreService::UpdatePreferences(grpc::CallbackServerContext* ctx,
                                                                     const v1::UpdatePreferencesRequest* req,
                                                                     v1::Customer* resp) {
  return Serve(ctx, req, resp, &CustomerStore::UpdatePreferences);
}

grpc::ServerUnaryReactor* InformationStoreService::MergeCustomers(grpc::CallbackServerContext* ctx,
                                                                  const v1::MergeCustomersRequest* req,
                                                                  v1::MergeCustomersResponse* resp) {
  return Serve(ctx, req, resp, &CustomerStore::Merge);
}

grpc::ServerUnaryReactor* InformationStoreService::ListMerges(grpc::CallbackServerContext* ctx,
                                                              const v1::ListMergesRequest* req,
                                                              v1::ListMergesResponse* resp) {
  return Serve(ctx, req, resp, &CustomerStore::ListMerges);
}

grpc::ServerUnaryReactor* InformationStoreService::UnmergeCustomers(grpc::CallbackServerContext* ctx,
                                                                    const v1::UnmergeCustomersRequest* req,
                                                                    v1::UnmergeCustomersResponse* resp) {
  return Serve(ctx, req, resp, &CustomerStore::Unmerge);
}

grpc::ServerUnaryReactor* InformationStoreService::ListCustomers(grpc::CallbackServerContext* ctx,
                                                                 const v1::ListCustomersRequest* req,
                                                                 v1::ListCustomersResponse* resp) {
  return Serve(ctx, req, resp, &CustomerStore::ListCustomers);
}

grpc::ServerUnaryReactor* InformationStoreService::ListEvents(grpc::CallbackServerContext* ctx,
                                                              const v1::ListEventsRequest* req,
                                                              v1::ListEventsResponse* resp) {
  return Serve(ctx, req, resp, &CustomerStore::ListEvents);
}

namespace {

// RecordEvents. Batches are read ahead of their commit (up to kReadAhead queued per stream), so
// one stream keeps the event writer's group commits full, and validated one at a time, so
// they are queued, and committed, in stream order. The final response counts every batch; a
// batch counts as acknowledged only then, so a client that loses the stream (or gets an error)
// resends every batch it sent — event ids make that safe. After a failed batch no more are
// read; batches already queued behind it may still be stored.
class EventsReader final : public grpc::ServerReadReactor<v1::RecordEventsRequest> {
 public:
  static constexpr int kReadAhead = 16;
  // No stream reads ahead while this many events wait for the event writer (each may still
  // have one batch in hand, so none is starved).
  static constexpr int64_t kMaxQueuedEvents = 100000;

  EventsReader(CustomerStore& store, server::Executor& executor, v1::RecordEventsResponse* response)
      : store_(store), executor_(executor), response_(response) {
    std::lock_guard lock(mu_);
    (void)Next();  // nothing to finish yet
  }

  void OnReadDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      std::lock_guard lock(mu_);
      reading_ = false;
      if (!ok) {
        closed_ = true;  // the client sent its last batch (or the call ended)
      } else if (error_.ok()) {
        Queue();
      }  // else: read before the failure was known, dropped
      finish = Next();
    }
    if (finish) Finish(*finish);
  }

  void OnDone() override {
    executor_.drain().Done();
    delete this;
  }

 private:
  // Under mu_: hands the batch just read to a worker, which validates it and queues it for the
  // event writer. The next batch is read only once this one is queued, so they keep their order.
  void Queue() {
    const int64_t number = ++read_;
    ++queued_;
    validating_ = true;
    const bool submitted = executor_.Submit([this, number, batch = std::move(batch_)]() mutable {
      absl::Status s = store_.RecordEvents(std::move(batch), [this, number](absl::StatusOr<EventBatchResult> r) {
        std::optional<grpc::Status> finish;
        {
          std::lock_guard lock(mu_);
          Committed(number, r);
          finish = Next();
        }
        if (finish) Finish(*finish);
      });
      std::optional<grpc::Status> finish;
      {
        std::lock_guard lock(mu_);
        if (!s.ok()) Committed(number, s);
        validating_ = false;
        finish = Next();
      }
      if (finish) Finish(*finish);
    });
    if (!submitted) {
      --queued_;
      validating_ = false;
      Fail(absl::ResourceExhaustedError(
          absl::StrCat("batch ", number, ": server overloaded; resend it and the batches after it later")));
    }
  }

  // Under mu_: one batch has been committed, or has failed.
  void Committed(int64_t number, const absl::StatusOr<EventBatchResult>& r) {
    --queued_;
    if (!r.ok()) {
      return Fail(absl::Status(r.status().code(), absl::StrCat("batch ", number, ": ", r.status().message())));
    }
    response_->set_batches(response_->batches() + 1);
    response_->set_accepted(response_->accepted() + r->accepted);
    response_->set_duplicates(response_->duplicates() + r->duplicates);
  }

  void Fail(absl::Status s) {
    if (error_.ok()) error_ = std::move(s);
  }

  // Under mu_: reads the next batch when there is room for it, or returns the status to finish
  // with once nothing is left pending. The caller finishes after unlocking: OnDone may delete
  // this at once.
  std::optional<grpc::Status> Next() {
    if (finished_ || validating_) return std::nullopt;
    if (error_.ok() && !closed_) {
      const bool room = queued_ == 0 || (queued_ < kReadAhead && store_.QueuedEvents() < kMaxQueuedEvents);
      if (!reading_ && room) {  // else a read or commit callback comes back here
        // Each batch is parsed into an arena of its own, freed in one piece once committed.
        google::protobuf::ArenaOptions options;
        options.start_block_size = 64 << 10;
        options.max_block_size = 1 << 20;
        auto arena = std::make_shared<google::protobuf::Arena>(options);
        batch_ = std::shared_ptr<v1::RecordEventsRequest>(
            arena, google::protobuf::Arena::CreateMessage<v1::RecordEventsRequest>(arena.get()));
        reading_ = true;
        StartRead(batch_.get());
      }
      return std::nullopt;
    }
    if (queued_ > 0) return std::nullopt;  // the last commit callback finishes
    finished_ = true;                      // (a read still outstanding ends with the call)
    if (!error_.ok()) return ToGrpc(error_);
    if (response_->batches() == 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the stream carried no event batches");
    }
    return grpc::Status::OK;
  }

  CustomerStore& store_;
  server::Executor& executor_;
  std::mutex mu_;
  v1::RecordEventsResponse* response_;
  std::shared_ptr<v1::RecordEventsRequest> batch_;  // the read in progress (its arena with it)
  int64_t read_ = 0;                                // batches read
  int queued_ = 0;                                  // read and not yet committed (validating, queued or committing)
  bool reading_ = false;                            // a read is outstanding
  bool validating_ = false;                         // the last batch read is being validated and queued
  bool closed_ = false;                             // the client has sent its last batch
  bool finished_ = false;
  absl::Status error_;  // the first failure; no more batches are read after it
};

constexpr int kMaxChangesPerMessage = 1000;
constexpr size_t kMessageBytes = 1 << 20;  // a message stops growing past this

// WatchChanges: one thread per stream reads the feed and writes it in order, in runs of
// changes per message, waking on each commit (and every 100 ms for writers in other
// processes), with heartbeats while idle.
class FeedWriter final : public grpc::ServerWriteReactor<v1::WatchChangesResponse> {
 public:
  FeedWriter(ChangeFeed& feed, FeedSignal& signal, const v1::WatchChangesRequest& request, server::Drain& drain)
      : feed_(feed), signal_(signal), request_(request), drain_(drain) {
    thread_ = std::thread([this] { Run(); });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    write_ok_ = ok;
    cv_.notify_all();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
    signal_.Notify();  // wake the loop if it is waiting for changes
  }

  void OnDone() override {
    thread_.join();  // Run() has returned: Finish() was its last act
    drain_.Done();
    delete this;
  }

 private:
  // One write in flight at a time, as the reactor API requires. (A buffer hint made it slower:
  // OnWriteDone of a held-back write waits for the flush.)
  bool Write(v1::WatchChangesResponse& message) {
    std::unique_lock lock(mu_);
    if (cancelled_) return false;
    message_.Swap(&message);
    message.Clear();
    writing_ = true;
    StartWrite(&message_);
    cv_.wait(lock, [&] { return !writing_; });
    return write_ok_;
  }

  bool cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

  void Run() {
    int64_t after = request_.after_sequence();
    if (after < 0) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "after_sequence: must be >= 0"));
    if (request_.max_changes_per_message() < 0) {
      return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "max_changes_per_message: must be >= 0 (0 means the default, 1,000)"));
    }
    absl::StatusOr<std::pair<int64_t, int64_t>> bounds = feed_.Bounds();
    if (!bounds.ok()) return Finish(ToGrpc(bounds.status()));
    if (bounds->first > 0 && after < bounds->first - 1) {
      return Finish(
          grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                       absl::StrCat("after_sequence ", after, " is older than the retained feed (oldest is ",
                                    bounds->first, "); resync with ListCustomers and watch from its as_of_sequence")));
    }
    std::set<int> kinds(request_.kinds().begin(), request_.kinds().end());
    const absl::Duration heartbeat =
        absl::Seconds(request_.heartbeat_seconds() > 0 ? std::min(request_.heartbeat_seconds(), 3600) : 5);
    const int per_message = request_.max_changes_per_message() > 0
                                ? std::min(request_.max_changes_per_message(), kMaxChangesPerMessage)
                                : kMaxChangesPerMessage;
    absl::Time last_write = absl::Now();
    uint64_t seen = signal_.generation();
    v1::WatchChangesResponse message;
    size_t message_bytes = 0;
    auto send = [&]() {
      message.set_position(after);
      message_bytes = 0;
      last_write = absl::Now();
      return Write(message);  // leaves `message` empty
    };
    while (!cancelled() && !signal_.draining()) {
      absl::StatusOr<std::vector<v1::Change>> changes = feed_.Read(after, 2000);
      if (!changes.ok()) return Finish(ToGrpc(changes.status()));
      for (v1::Change& ch : *changes) {
        after = ch.sequence();
        if (!kinds.empty() && !kinds.count(ch.kind())) continue;
        message_bytes += ch.ByteSizeLong();
        message.mutable_changes()->Add(std::move(ch));
        if (message.changes_size() >= per_message || message_bytes >= kMessageBytes) {
          if (!send()) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
        }
      }
      if (!changes->empty()) continue;
      // Caught up: send what is held, or a heartbeat when idle for long enough.
      if (message.changes_size() > 0 || absl::Now() - last_write >= heartbeat) {
        if (!send()) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      }
      seen = signal_.Wait(seen, absl::Milliseconds(100));
    }
    if (cancelled()) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat("server shutting down; resume from after_sequence ", after)));
  }

  ChangeFeed& feed_;
  FeedSignal& signal_;
  const v1::WatchChangesRequest request_;
  server::Drain& drain_;
  std::mutex mu_;
  std::condition_variable cv_;
  v1::WatchChangesResponse message_;
  bool writing_ = false;
  bool write_ok_ = true;
  bool cancelled_ = false;
  std::thread thread_;
};

}  // namespace

// A stream that begins while the server shuts down is refused; one admitted before runs until
// it ends (RecordEvents: when its client has sent its last batch; WatchChanges: at once, its
// loop sees the feed draining).
grpc::ServerReadReactor<v1::RecordEventsRequest>* InformationStoreService::RecordEvents(
    grpc::CallbackServerContext*, v1::RecordEventsResponse* resp) {
  if (!executor_.drain().Admit()) {
    return new server::RefusedStream<grpc::ServerReadReactor<v1::RecordEventsRequest>>(executor_.drain());
  }
  return new EventsReader(store_, executor_, resp);
}

grpc::ServerWriteReactor<v1::WatchChangesResponse>* InformationStoreService::WatchChanges(
    grpc::CallbackServerContext*, const v1::WatchChangesRequest* req) {
  if (!executor_.drain().Admit()) {
    return new server::RefusedStream<grpc::ServerWriteReactor<v1::WatchChangesResponse>>(executor_.drain());
  }
  return new FeedWriter(feed_, signal_, *req, executor_.drain());
}

}  // namespace ecrm::infostore
