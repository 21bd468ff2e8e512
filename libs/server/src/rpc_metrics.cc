#include "rpc_metrics.h"

#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ecrm::server {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

}  // namespace

class RpcInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(RpcMetrics& metrics, RpcMetrics::Method& method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {
    metrics_.in_flight_.Increment();
  }
  ~RpcInterceptor() override {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    metrics_.Finish(method_, code_, seconds);
    metrics_.in_flight_.Decrement();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      code_ = methods->GetSendStatus().error_code();
    }
    methods->Proceed();
  }

 private:
  RpcMetrics& metrics_;
  RpcMetrics::Method& method_;
  std::chrono::steady_clock::time_point start_;
  grpc::StatusCode code_ = grpc::StatusCode::CANCELLED;  // no status sent: the client went away
};

RpcMetrics::RpcMetrics(prometheus::Registry& registry)
    : handled_(prometheus::BuildCounter()
                   .Name("grpc_server_handled_total")
                   .Help("RPCs completed on the server, by method and status code.")
                   .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("grpc_server_handling_seconds")
                   .Help("Time from an RPC's start to its status being sent, by method.")
                   .Register(registry)),
      in_flight_(prometheus::BuildGauge()
                     .Name("grpc_server_requests_in_flight")
                     .Help("RPCs started and not yet finished.")
                     .Register(registry)
                     .Add({})) {
  unknown_ = NewMethod("unknown", "unknown");
}

std::unique_ptr<RpcMetrics::Method> RpcMetrics::NewMethod(absl::string_view service, absl::string_view method) {
  auto m = std::make_unique<Method>();
  m->service = std::string(service);
  m->method = std::string(method);
  m->latency = &latency_.Add({{"grpc_service", m->service}, {"grpc_method", m->method}}, LatencyBuckets());
  return m;
}

void RpcMetrics::RegisterMethod(absl::string_view full_method) {
  // "/pkg.Service/Method"
  absl::string_view s = full_method;
  if (!s.empty() && s.front() == '/') s.remove_prefix(1);
  size_t slash = s.find('/');
  if (slash == absl::string_view::npos) return;
  methods_.emplace(std::string(full_method), NewMethod(s.substr(0, slash), s.substr(slash + 1)));
}

RpcMetrics::Method& RpcMetrics::Lookup(const char* full_method) {
  if (full_method != nullptr) {
    auto it = methods_.find(absl::string_view(full_method));
    if (it != methods_.end()) return *it->second;
  }
  return *unknown_;
}

grpc::experimental::Interceptor* RpcMetrics::CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) {
  return new RpcInterceptor(*this, Lookup(info->method()));
}

void RpcMetrics::Finish(Method& m, grpc::StatusCode code, double seconds) {
  m.latency->Observe(seconds);
  int index = static_cast<int>(code);
  if (index < 0 || index >= 17) index = static_cast<int>(grpc::StatusCode::UNKNOWN);
  prometheus::Counter* counter = m.handled[index].load(std::memory_order_acquire);
  if (counter == nullptr) {
    std::lock_guard lock(add_mu_);
    counter = m.handled[index].load();
    if (counter == nullptr) {
      counter = &handled_.Add({{"grpc_service", m.service},
                               {"grpc_method", m.method},
                               {"grpc_code", absl::StatusCodeToString(static_cast<absl::StatusCode>(index))}});
      m.handled[index].store(counter, std::memory_order_release);
    }
  }
  counter->Increment();
}

}  // namespace ecrm::server
