#include "loadgen.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ecrm/status/macros.h"

namespace ecrm::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

// Shared state of one run; completions arrive on gRPC's threads.
struct State {
  explicit State(const Options& o) : options(o) {}
  const Options& options;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::unique_ptr<Workload> workload;
  Clock::time_point measure_from;
  Clock::time_point measure_to;

  std::mutex mu;
  std::condition_variable cv;
  int64_t in_flight = 0;
  std::vector<double> latencies_ms;  // measured window only
  std::array<int64_t, 17> codes{};

  std::atomic<int64_t> next{0};  // closed loop: the next request's number

  // Issues request n; `chain` (closed loop): its completion issues the lane's next request.
  void Issue(int64_t n, Clock::time_point scheduled, bool chain) {
    grpc::Channel& channel = *channels[n % channels.size()];
    workload->Call(n, channel, options.timeout, [this, scheduled, chain](const grpc::Status& status) {
      const Clock::time_point now = Clock::now();
      if (chain) NextInLane();  // before this request stops counting, so Drain waits for it too
      std::lock_guard lock(mu);
      --in_flight;
      if (scheduled >= measure_from && scheduled < measure_to) {
        latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - scheduled).count());
        int code = static_cast<int>(status.error_code());
        ++codes[code >= 0 && code < 17 ? code : 2];
      }
      // Under the lock: once Drain has seen no request in flight, no completion touches this
      // state again (it is destroyed right after).
      cv.notify_all();
    });
  }

  void NextInLane() {
    if (Clock::now() >= measure_to) return;
    {
      std::lock_guard lock(mu);
      ++in_flight;
    }
    Issue(next++, Clock::now(), true);
  }

  // Blocks until a request slot is free, then takes it.
  void TakeSlot() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return in_flight < options.concurrency; });
    ++in_flight;
  }

  // True once no request is in flight (each has a deadline, so this comes); false if `timeout`
  // passed first.
  bool Drain(absl::Duration timeout) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return in_flight == 0; });
  }
};

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

void RunOpenLoop(State& s) {
  const auto interval = std::chrono::duration<double>(1.0 / s.options.rate);
  const Clock::time_point start = s.measure_from - absl::ToChronoNanoseconds(s.options.warmup);
  for (int64_t n = 0;; ++n) {
    auto scheduled = start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(n));
    if (scheduled >= s.measure_to) break;
    std::this_thread::sleep_until(scheduled);  // no-op when behind: catch up at once
    s.TakeSlot();                              // a stalled server delays us; latency still counts from `scheduled`
    s.Issue(n, scheduled, false);
  }
}

void RunClosedLoop(State& s) {
  for (int64_t i = 0; i < s.options.concurrency; ++i) s.NextInLane();
  std::this_thread::sleep_until(s.measure_to);
}

}  // namespace

absl::StatusOr<Report> Run(const Options& options) {
  auto it = Workloads().find(options.workload);
  if (it == Workloads().end()) {
    std::vector<std::string> names;
    for (const auto& [name, factory] : Workloads()) names.push_back(name);
    return absl::InvalidArgumentError(
        absl::StrCat("unknown workload \"", options.workload, "\"; one of: ", absl::StrJoin(names, ", ")));
  }
  if (options.rate < 0 || options.concurrency < 1 || options.connections < 1 ||
      options.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("rate must be ≥ 0, concurrency and connections ≥ 1, duration > 0");
  }
  // On the heap: should requests outlive their deadlines (Drain below gives up), the state they
  // complete into is left alive rather than freed under them.
  auto state = std::make_unique<State>(options);
  State& s = *state;
  for (int64_t i = 0; i < options.connections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own per channel
    args.SetInt("ecrm.loadgen.channel", static_cast<int>(i));
    s.channels.push_back(grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args));
    if (!s.channels.back()->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(5)))) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", options.target));
    }
  }
  ECRM_ASSIGN_OR_RETURN(s.workload, it->second(s.channels, options));
  s.latencies_ms.reserve(static_cast<size_t>(
      std::min(5e7, (options.rate > 0 ? options.rate : 100000) * absl::ToDoubleSeconds(options.duration) * 1.1)));

  const Clock::time_point now = Clock::now();
  s.measure_from = now + absl::ToChronoNanoseconds(options.warmup);
  s.measure_to = s.measure_from + absl::ToChronoNanoseconds(options.duration);
  if (options.rate > 0) {
    RunOpenLoop(s);
  } else {
    RunClosedLoop(s);
  }
  if (!s.Drain(options.timeout + absl::Seconds(30))) {
    static_cast<void>(state.release());  // still referenced by requests gRPC has not completed
    return absl::DeadlineExceededError("requests still in flight 30 s past their deadline");
  }

  std::lock_guard lock(s.mu);
  Report r;
  r.workload = options.workload;
  r.target_rate = options.rate;
  r.seconds = absl::ToDoubleSeconds(options.duration);
  r.requests = static_cast<int64_t>(s.latencies_ms.size());
  r.achieved_rate = static_cast<double>(r.requests) / r.seconds;
  r.ok = s.codes[0];
  for (int c = 1; c < 17; ++c) {
    if (s.codes[c] > 0) r.errors[absl::StatusCodeToString(static_cast<absl::StatusCode>(c))] = s.codes[c];
  }
  std::sort(s.latencies_ms.begin(), s.latencies_ms.end());
  r.p50 = Percentile(s.latencies_ms, 0.50);
  r.p90 = Percentile(s.latencies_ms, 0.90);
  r.p99 = Percentile(s.latencies_ms, 0.99);
  r.p999 = Percentile(s.latencies_ms, 0.999);
  r.max = s.latencies_ms.empty() ? 0 : s.latencies_ms.back();
  double sum = 0;
  for (double v : s.latencies_ms) sum += v;
  r.mean = s.latencies_ms.empty() ? 0 : sum / static_cast<double>(s.latencies_ms.size());
  return r;
}

std::string Report::Human() const {
  std::string errs;
  for (const auto& [code, n] : errors) absl::StrAppend(&errs, errs.empty() ? "" : ", ", code, "=", n);
  return absl::StrFormat(
      "workload     %s\n"
      "target rate  %s\n"
      "achieved     %.0f req/s over %.1fs (%d requests, %d ok)\n"
      "errors       %s\n"
      "latency ms   p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
      workload, target_rate > 0 ? absl::StrFormat("%.0f req/s (open loop)", target_rate) : "saturation (closed loop)",
      achieved_rate, seconds, requests, ok, errs.empty() ? "none" : errs, p50, p90, p99, p999, max, mean);
}

std::string Report::Json() const {
  std::string errs;
  for (const auto& [code, n] : errors) absl::StrAppend(&errs, errs.empty() ? "" : ",", "\"", code, "\":", n);
  return absl::StrFormat(
      "{\"workload\":\"%s\",\"target_rate\":%.1f,\"achieved_rate\":%.1f,\"seconds\":%.3f,\"requests\":%d,"
      "\"ok\":%d,\"errors\":{%s},\"latency_ms\":{\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"p999\":%.4f,"
      "\"max\":%.4f,\"mean\":%.4f}}",
      workload, target_rate, achieved_rate, seconds, requests, ok, errs, p50, p90, p99, p999, max, mean);
}

}  // namespace ecrm::loadgen
