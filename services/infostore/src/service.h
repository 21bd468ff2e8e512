// The thin gRPC layer of the information store: maps proto requests to CustomerStore calls
// on the worker pool and absl::Status to grpc::Status. No domain logic here.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "change_feed.h"
#include "customer_store.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/server/executor.h"
#include "ecrm/server/offload.h"
#include "privacy.h"

namespace ecrm::infostore {

// Wakes change-feed streams when something was committed; ends them when the server drains.
class FeedSignal {
 public:
  void Notify();
  // Waits until a Notify() after `seen`, the timeout, or Drain(); returns the new generation.
  uint64_t Wait(uint64_t seen, absl::Duration timeout);
  uint64_t generation();
  void Drain();
  bool draining() const { return draining_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
  std::atomic<bool> draining_{false};
};

class InformationStoreService final : public v1::InformationStore::CallbackService {
 public:
  InformationStoreService(CustomerStore& store, ChangeFeed& feed, server::Executor& executor, FeedSignal& signal,
                          PrivacyFanout& privacy)
      : store_(store), feed_(feed), executor_(executor), signal_(signal), privacy_(privacy) {}

  grpc::ServerUnaryReactor* UpsertCustomer(grpc::CallbackServerContext* ctx, const v1::UpsertCustomerRequest* req,
                                           v1::UpsertCustomerResponse* resp) override;
  grpc::ServerUnaryReactor* GetCustomer(grpc::CallbackServerContext* ctx, const v1::GetCustomerRequest* req,
                                        v1::Customer* resp) override;
  grpc::ServerUnaryReactor* BatchGetCustomers(grpc::CallbackServerContext* ctx, const v1::BatchGetCustomersRequest* req,
                                              v1::BatchGetCustomersResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateConsent(grpc::CallbackServerContext* ctx, const v1::UpdateConsentRequest* req,
                                          v1::Customer* resp) override;
  grpc::ServerUnaryReactor* GetConsentHistory(grpc::CallbackServerContext* ctx, const v1::GetConsentHistoryRequest* req,
                                              v1::GetConsentHistoryResponse* resp) override;
  grpc::ServerUnaryReactor* UpdatePreferences(grpc::CallbackServerContext* ctx, const v1::UpdatePreferencesRequest* req,
                                              v1::Customer* resp) override;
  grpc::ServerUnaryReactor* MergeCustomers(grpc::CallbackServerContext* ctx, const v1::MergeCustomersRequest* req,
                                           v1::MergeCustomersResponse* resp) override;
  grpc::ServerUnaryReactor* ListMerges(grpc::CallbackServerContext* ctx, const v1::ListMergesRequest* req,
                                       v1::ListMergesResponse* resp) override;
  grpc::ServerUnaryReactor* UnmergeCustomers(grpc::CallbackServerContext* ctx, const v1::UnmergeCustomersRequest* req,
                                             v1::UnmergeCustomersResponse* resp) override;
  grpc::ServerUnaryReactor* ListCustomers(grpc::CallbackServerContext* ctx, const v1::ListCustomersRequest* req,
                                          v1::ListCustomersResponse* resp) override;
  grpc::ServerUnaryReactor* ListEvents(grpc::CallbackServerContext* ctx, const v1::ListEventsRequest* req,
                                       v1::ListEventsResponse* resp) override;
  grpc::ServerUnaryReactor* ExportCustomer(grpc::CallbackServerContext* ctx, const v1::ExportCustomerRequest* req,
                                           v1::ExportCustomerResponse* resp) override;
  grpc::ServerUnaryReactor* EraseCustomer(grpc::CallbackServerContext* ctx, const v1::EraseCustomerRequest* req,
                                          v1::EraseCustomerResponse* resp) override;
  grpc::ServerReadReactor<v1::RecordEventsRequest>* RecordEvents(grpc::CallbackServerContext* ctx,
                                                                 v1::RecordEventsResponse* resp) override;
  grpc::ServerWriteReactor<v1::WatchChangesResponse>* WatchChanges(grpc::CallbackServerContext* ctx,
                                                                   const v1::WatchChangesRequest* req) override;

 private:
  // Runs fn on a worker and finishes the RPC with its status.
  grpc::ServerUnaryReactor* Offload(grpc::CallbackServerContext* ctx, std::function<absl::Status()> fn) {
    return server::Offload(executor_, ctx, std::move(fn));
  }
  // Offload for the common shape: call a store method returning StatusOr<Resp>, move it into *resp.
  template <typename Req, typename Resp, typename Method>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, const Req* req, Resp* resp, Method method) {
    return Offload(ctx, [this, req, resp, method]() -> absl::Status {
      absl::StatusOr<Resp> r = (store_.*method)(*req);
      if (!r.ok()) return r.status();
      *resp = std::move(*r);
      return absl::OkStatus();
    });
  }

  CustomerStore& store_;
  ChangeFeed& feed_;
  server::Executor& executor_;
  FeedSignal& signal_;
  PrivacyFanout& privacy_;
};

}  // namespace ecrm::infostore
