// Per-RPC Prometheus metrics recorded by a server interceptor: requests handled by method and
// status code, latency histogram by method, requests in flight. Metric children are created
// at start-up (per method) or once per (method, code); the RPC path only increments.
#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace ecrm::server {

class RpcMetrics final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetrics(prometheus::Registry& registry);

  // "/package.Service/Method"; call for every method before the server starts.
  void RegisterMethod(absl::string_view full_method);

  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

  struct Method {
    std::string service;
    std::string method;
    prometheus::Histogram* latency = nullptr;
    std::array<std::atomic<prometheus::Counter*>, 17> handled{};
  };
  void Finish(Method& m, grpc::StatusCode code, double seconds);

 private:
  Method& Lookup(const char* full_method);
  std::unique_ptr<Method> NewMethod(absl::string_view service, absl::string_view method);

  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Gauge& in_flight_;
  std::mutex add_mu_;  // guards Family::Add for a (method, code) first seen
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> methods_;  // read-only once serving
  std::unique_ptr<Method> unknown_;

  friend class RpcInterceptor;
};

}  // namespace ecrm::server
