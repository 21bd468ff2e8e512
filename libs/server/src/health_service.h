// grpc.health.v1.Health for ecrm servers. Unlike gRPC's built-in service it starts
// NOT_SERVING (so nothing is reported ready before warm-up is done) and on Shutdown() tells
// every Watch stream NOT_SERVING and then ends it, so watchers never hold up a drain.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace ecrm::server {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  HealthService();
  ~HealthService() override;

  // Sets one service's status ("" is the whole server) and notifies its watchers.
  void Set(const std::string& service, Status status);
  // Every service NOT_SERVING, watchers told and their streams finished; later Sets are ignored.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                                  grpc::health::v1::HealthCheckResponse* resp) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req) override;

 private:
  class Watcher;
  friend class Watcher;
  Status Lookup(const std::string& service) const;  // requires mu_
  void Forget(Watcher* w);

  mutable std::mutex mu_;
  std::map<std::string, Status> statuses_;
  std::set<Watcher*> watchers_;
  bool shut_down_ = false;
};

}  // namespace ecrm::server
