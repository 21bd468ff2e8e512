// An open-loop gRPC load generator.
//
// Requests are scheduled at fixed intervals for the target rate and each one's latency is
// measured from its scheduled send time, not from when it was actually sent, so a server
// that stalls is charged for every request that queued behind the stall (no coordinated
// omission). With rate 0 it runs closed-loop at `concurrency` outstanding requests to find
// the saturation throughput.
#pragma once

#include <grpcpp/channel.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ecrm::loadgen {

// One kind of request. Call() starts request number `n` asynchronously and must invoke
// `done` exactly once, from any thread, without blocking.
class Workload {
 public:
  virtual ~Workload() = default;
  virtual void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
                    std::function<void(const grpc::Status&)> done) = 0;
};

// Builds a workload by name ("health", …); `setup` runs once before the load (seeding data).
struct Options;
using WorkloadFactory = std::function<absl::StatusOr<std::unique_ptr<Workload>>(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels, const struct Options& options)>;
const std::map<std::string, WorkloadFactory>& Workloads();

struct Options {
  std::string target = "127.0.0.1:50051";
  std::string workload = "health";
  double rate = 1000;  // requests per second; 0: closed loop
  absl::Duration duration = absl::Seconds(10);
  absl::Duration warmup = absl::Seconds(2);
  int64_t concurrency = 64;  // most requests in flight at once
  int64_t connections = 2;   // HTTP/2 connections, requests spread round-robin
  absl::Duration timeout = absl::Seconds(5);
  int64_t population = 0;  // data a workload seeds first (customers, carts); 0: its default
  std::string ids_file;    // customer ids, one a line, for workloads that call for known customers
  int64_t batch_size = 0;  // customers per call, for batch workloads (0: the workload's default)
};

struct Report {
  std::string workload;
  double target_rate = 0;
  double achieved_rate = 0;  // completed requests per second in the measured window
  double seconds = 0;
  int64_t requests = 0;  // completed in the measured window
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // by status code name
  // Latency in milliseconds from scheduled send to completion.
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;

  std::string Human() const;
  std::string Json() const;
};

absl::StatusOr<Report> Run(const Options& options);

}  // namespace ecrm::loadgen
