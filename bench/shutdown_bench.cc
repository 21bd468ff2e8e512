// ecrm-shutdown-bench: what clients see when an engine is stopped with SIGTERM (issue 12).
//
//   --mode=load   Each round starts ecrm-transaction on a fresh SQLite database; --clients
//                 clients (one HTTP/2 connection each) send AddCartItem at --rate in total (open
//                 loop, at most --outstanding in flight per client) for --warmup; then SIGTERM,
//                 and the clients keep sending until the process has exited. Every call's
//                 outcome is recorded. The engine is then started again on the same database
//                 and each client's cart is compared with its calls answered OK: an item must be
//                 in the cart exactly when its call was acknowledged.
//   --mode=idle   Each round starts the engine, connects --clients idle clients (C++ channels in
//                 this process, or Python grpcio processes with --client=python), each makes
//                 one call and then nothing; SIGTERM; the time to exit.
//
// One line per round on stderr, JSON lines (bench/lib.sh's shape) on stdout.
#include <signal.h>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bench_util.h"
#include "ecrm/config/flags.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/service.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

namespace v1 = ecrm::transaction::v1;
using Clock = std::chrono::steady_clock;
using ecrm::testing::Process;
using ecrm::testing::ServiceProcess;
using ecrm::testing::TempDir;

struct Options {
  std::string server;
  std::string client = "cpp";
  std::string python = "/usr/bin/python3";
  std::string python_client;
  int64_t rounds = 10;
  int64_t clients = 4;
  double rate = 300;
  int64_t outstanding = 16;
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration grace = absl::Seconds(10);
};

// A channel of its own (its own TCP connection): channels with different arguments share no
// subchannel.
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address, int n) {
  grpc::ChannelArguments args;
  args.SetInt("ecrm.bench.client", n);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// The time the process exited, measured by polling waitpid every 5 ms.
absl::Duration WaitExit(Process& p, absl::Time signalled, absl::Duration limit, int* code) {
  std::optional<int> c = p.Wait(limit);
  *code = c.value_or(-1);
  return absl::Now() - signalled;
}

// ts="2026-…Z" of the last line containing `msg`.
std::optional<absl::Time> LogTime(const std::string& log, const std::string& msg) {
  size_t at = log.rfind(msg);
  if (at == std::string::npos) return std::nullopt;
  size_t line = log.rfind('\n', at);
  line = line == std::string::npos ? 0 : line + 1;
  size_t ts = log.find("ts=", line);
  if (ts == std::string::npos || ts > at) return std::nullopt;
  absl::Time t;
  std::string err;
  std::string text = log.substr(ts + 3, log.find(' ', ts) - ts - 3);
  if (!text.empty() && text.front() == '"') text = text.substr(1, text.size() - 2);
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", text, &t, &err)) return std::nullopt;
  return t;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

struct Outcome {
  Clock::time_point start;
  grpc::StatusCode code;
  std::string message;
};

// One client: its own connection and customer; AddCartItem of one unit of "sku-1" per call.
class LoadClient {
 public:
  LoadClient(const std::string& address, int n, double rate, int64_t outstanding)
      : channel_(OwnChannel(address, n)),
        stub_(v1::Transaction::NewStub(channel_)),
        customer_(absl::StrCat("shutdown-bench-", n)),
        interval_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate))),
        outstanding_(outstanding) {}

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    thread_.join();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
  }
  const std::string& customer() const { return customer_; }
  const std::vector<Outcome>& outcomes() const { return outcomes_; }
  int64_t skipped() const { return skipped_; }

 private:
  void Run() {
    Clock::time_point next = Clock::now();
    while (!stop_) {
      std::this_thread::sleep_until(next);
      next += interval_;
      {
        std::lock_guard lock(mu_);
        if (in_flight_ >= outstanding_) {
          ++skipped_;
          continue;
        }
        ++in_flight_;
      }
      auto call = std::make_shared<Call>();
      call->req.set_customer_id(customer_);
      call->req.set_sku("sku-1");
      call->req.set_quantity(1);
      call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      call->start = Clock::now();
      stub_->async()->AddCartItem(&call->ctx, &call->req, &call->resp, [this, call](grpc::Status s) {
        std::lock_guard lock(mu_);
        outcomes_.push_back({call->start, s.error_code(), s.error_message()});
        --in_flight_;
        cv_.notify_all();
      });
    }
  }

  struct Call {
    grpc::ClientContext ctx;
    v1::AddCartItemRequest req;
    v1::Cart resp;
    Clock::time_point start;
  };
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Transaction::Stub> stub_;
  const std::string customer_;
  const Clock::duration interval_;
  const int64_t outstanding_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t in_flight_ = 0;
  int64_t skipped_ = 0;
  std::vector<Outcome> outcomes_;
};

struct LoadRound {
  int64_t calls = 0, ok = 0, unavailable = 0, cancelled = 0, other = 0;
  int64_t before_not_ok = 0;         // started before the signal and not answered OK
  double before_not_ok_lead_ms = 0;  // the longest such call was started this long before the signal
  int64_t mismatched = 0;            // clients whose cart disagrees with their acknowledged calls
  double exit_ms = 0, stopped_to_exit_ms = 0;
  int exit_code = -1;
  std::map<std::string, int64_t> messages;  // code: message of every call not OK
};

absl::StatusOr<LoadRound> RunLoadRound(const Options& o) {
  TempDir dir;
  const std::string db = absl::StrCat("--database-url=sqlite://", dir.path(), "/transaction.db");
  const std::string grace = absl::StrCat("--shutdown-grace=", absl::FormatDuration(o.grace));
  auto started = ServiceProcess::Start(o.server, {db, "--redis-url=", grace});
  if (!started.ok()) return started.status();
  ServiceProcess& s = **started;
  {
    auto stub = v1::Transaction::NewStub(s.channel());
    grpc::ClientContext ctx;
    v1::UpsertProductRequest req;
    v1::Product* p = req.mutable_product();
    p->set_sku("sku-1");
    p->set_title("Bench product");
    p->set_category("bench");
    p->mutable_price()->set_amount_minor(100);
    p->mutable_price()->set_currency("EUR");
    p->set_active(true);
    v1::Product resp;
    grpc::Status st = stub->UpsertProduct(&ctx, req, &resp);
    if (!st.ok()) return absl::UnavailableError(absl::StrCat("UpsertProduct: ", st.error_message()));
  }
  std::vector<std::unique_ptr<LoadClient>> clients;
  for (int i = 0; i < o.clients; ++i) {
    clients.push_back(std::make_unique<LoadClient>(s.grpc_address(), i, o.rate / o.clients, o.outstanding));
  }
  for (auto& c : clients) c->Start();
  std::this_thread::sleep_for(absl::ToChronoNanoseconds(o.warmup));
  const Clock::time_point signal_at = Clock::now();
  const absl::Time signalled = absl::Now();
  s.process().Signal(SIGTERM);
  LoadRound r;
  r.exit_ms = Ms(WaitExit(s.process(), signalled, o.grace + absl::Seconds(20), &r.exit_code));
  const absl::Time exited = absl::Now();
  for (auto& c : clients) c->Stop();  // calls after the exit fail at once: connection refused
  const std::string log = s.process().Output();
  if (std::optional<absl::Time> stopped = LogTime(log, "msg=stopped")) r.stopped_to_exit_ms = Ms(exited - *stopped);

  // The carts, read back from the same database.
  auto again = ServiceProcess::Start(o.server, {db, "--redis-url="});
  if (!again.ok()) return again.status();
  auto stub = v1::Transaction::NewStub((*again)->channel());
  for (auto& c : clients) {
    int64_t ok = 0;
    for (const Outcome& out : c->outcomes()) {
      ++r.calls;
      const bool before = out.start < signal_at;
      switch (out.code) {
        case grpc::StatusCode::OK:
          ++r.ok;
          ++ok;
          continue;
        case grpc::StatusCode::UNAVAILABLE:
          ++r.unavailable;
          break;
        case grpc::StatusCode::CANCELLED:
          ++r.cancelled;
          break;
        default:
          ++r.other;
      }
      if (before) {
        ++r.before_not_ok;
        r.before_not_ok_lead_ms =
            std::max(r.before_not_ok_lead_ms, std::chrono::duration<double, std::milli>(signal_at - out.start).count());
      }
      std::string message = out.message;  // without the port, which differs round by round
      if (size_t at = message.find("ipv4:"); at != std::string::npos) {
        message.replace(at, message.find(':', message.find(':', at + 5) + 1) - at, "<address>");
      }
      ++r.messages[absl::StrCat(out.code, ": ", message)];
    }
    grpc::ClientContext ctx;
    v1::GetCartRequest req;
    req.set_customer_id(c->customer());
    v1::Cart cart;
    grpc::Status st = stub->GetCart(&ctx, req, &cart);
    if (!st.ok()) return absl::UnavailableError(absl::StrCat("GetCart: ", st.error_message()));
    int64_t in_cart = 0;
    for (const auto& line : cart.lines()) in_cart += line.quantity();
    if (in_cart != ok) {
      ++r.mismatched;
      std::fprintf(stderr, "  %s: %lld acknowledged, %lld in the cart\n", c->customer().c_str(),
                   static_cast<long long>(ok), static_cast<long long>(in_cart));
    }
  }
  (*again)->process().Signal(SIGTERM);
  (void)(*again)->process().Wait(absl::Seconds(30));
  return r;
}

absl::StatusOr<double> RunIdleRound(const Options& o, double* stopped_to_exit_ms) {
  auto started = ServiceProcess::Start(
      o.server, {"--redis-url=", absl::StrCat("--shutdown-grace=", absl::FormatDuration(o.grace))});
  if (!started.ok()) return started.status();
  ServiceProcess& s = **started;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<Process>> pythons;
  TempDir dir;
  for (int i = 0; i < o.clients; ++i) {
    if (o.client == "python") {
      const std::string log = absl::StrCat(dir.path(), "/client-", i, ".log");
      auto p = Process::Spawn({o.python, o.python_client, s.grpc_address()}, log);
      if (!p.ok()) return p.status();
      const absl::Time deadline = absl::Now() + absl::Seconds(20);
      while (!absl::StrContains((*p)->Output(), "ready") && absl::Now() < deadline && (*p)->running()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!absl::StrContains((*p)->Output(), "ready")) {
        return absl::UnavailableError(absl::StrCat("python client: ", (*p)->Output()));
      }
      pythons.push_back(std::move(*p));
    } else {
      auto channel = OwnChannel(s.grpc_address(), i);
      auto stub = grpc::health::v1::Health::NewStub(channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      grpc::health::v1::HealthCheckRequest req;
      grpc::health::v1::HealthCheckResponse resp;
      grpc::Status st = stub->Check(&ctx, req, &resp);
      if (!st.ok()) return absl::UnavailableError(absl::StrCat("health check: ", st.error_message()));
      channels.push_back(channel);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // every client idle
  const absl::Time signalled = absl::Now();
  s.process().Signal(SIGTERM);
  int code = -1;
  const absl::Duration took = WaitExit(s.process(), signalled, o.grace + absl::Seconds(20), &code);
  const absl::Time exited = absl::Now();
  if (code != 0) return absl::InternalError(absl::StrCat("exit code ", code, "\n", s.process().Output()));
  if (std::optional<absl::Time> stopped = LogTime(s.process().Output(), "msg=stopped")) {
    *stopped_to_exit_ms = Ms(exited - *stopped);
  }
  return Ms(took);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string mode = "load";
  o.server = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-transaction");
  o.python_client = absl::StrCat(ECRM_SOURCE_DIR, "/bench/shutdown_idle_client.py");
  ecrm::config::Flags flags("ecrm-shutdown-bench", "what clients see when an engine is stopped with SIGTERM");
  flags.AddString("mode", &mode, "load (AddCartItem under load, then SIGTERM) or idle (idle clients, then SIGTERM)");
  flags.AddString("server", &o.server, "the engine binary (ecrm-transaction: load mode calls AddCartItem)");
  flags.AddString("client", &o.client, "idle mode: cpp (channels in this process) or python (grpcio processes)");
  flags.AddString("python", &o.python, "the Python interpreter with grpcio (Debian: python3-grpcio)");
  flags.AddString("python-client", &o.python_client, "the Python idle client script");
  flags.AddInt("rounds", &o.rounds, "SIGTERMs (each on a fresh server)");
  flags.AddInt("clients", &o.clients, "clients, one connection each");
  flags.AddDouble("rate", &o.rate, "load mode: AddCartItem calls per second, all clients together");
  flags.AddInt("outstanding", &o.outstanding, "load mode: most calls in flight per client");
  flags.AddDuration("warmup", &o.warmup, "load mode: load before the signal");
  flags.AddDuration("grace", &o.grace, "the server's --shutdown-grace");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  signal(SIGPIPE, SIG_IGN);

  if (mode == "load") {
    std::vector<double> exits, stopped_to_exit;
    int64_t calls = 0, ok = 0, unavailable = 0, cancelled = 0, other = 0, before_not_ok = 0, mismatched = 0;
    double before_not_ok_lead_ms = 0;
    std::map<std::string, int64_t> messages;
    for (int64_t i = 0; i < o.rounds; ++i) {
      absl::StatusOr<LoadRound> r = RunLoadRound(o);
      if (!r.ok()) {
        std::fprintf(stderr, "round %lld: %s\n", static_cast<long long>(i), std::string(r.status().message()).c_str());
        return 1;
      }
      std::fprintf(stderr,
                   "round %lld: exit %d after %.0f ms (%.0f ms after 'stopped'); %lld calls: %lld OK, %lld "
                   "UNAVAILABLE, %lld CANCELLED, %lld other; %lld started before the signal and not OK (at most %.2f "
                   "ms before); %lld carts disagree\n",
                   static_cast<long long>(i), r->exit_code, r->exit_ms, r->stopped_to_exit_ms,
                   static_cast<long long>(r->calls), static_cast<long long>(r->ok),
                   static_cast<long long>(r->unavailable), static_cast<long long>(r->cancelled),
                   static_cast<long long>(r->other), static_cast<long long>(r->before_not_ok), r->before_not_ok_lead_ms,
                   static_cast<long long>(r->mismatched));
      exits.push_back(r->exit_ms);
      stopped_to_exit.push_back(r->stopped_to_exit_ms);
      calls += r->calls, ok += r->ok, unavailable += r->unavailable, cancelled += r->cancelled, other += r->other;
      before_not_ok += r->before_not_ok, mismatched += r->mismatched;
      before_not_ok_lead_ms = std::max(before_not_ok_lead_ms, r->before_not_ok_lead_ms);
      for (auto& [m, n] : r->messages) messages[m] += n;
    }
    for (auto& [m, n] : messages) std::fprintf(stderr, "  %6lld × %s\n", static_cast<long long>(n), m.c_str());
    std::printf(
        "{\"bench\":\"shutdown.load\",\"rounds\":%lld,\"calls\":%lld,\"ok\":%lld,\"unavailable\":%lld,"
        "\"cancelled\":%lld,\"other\":%lld,\"started_before_signal_not_ok\":%lld,"
        "\"started_before_signal_not_ok_max_lead_ms\":%.2f,\"carts_disagreeing\":%lld}\n",
        static_cast<long long>(o.rounds), static_cast<long long>(calls), static_cast<long long>(ok),
        static_cast<long long>(unavailable), static_cast<long long>(cancelled), static_cast<long long>(other),
        static_cast<long long>(before_not_ok), before_not_ok_lead_ms, static_cast<long long>(mismatched));
    ecrm::bench::PrintResult("shutdown.load.exit", "ms", exits);
    ecrm::bench::PrintResult("shutdown.load.stopped_to_exit", "ms", stopped_to_exit);
    // Calls still on their way when the signal came are answered UNAVAILABLE without running
    // (the carts show whether they ran); no call may be CANCELLED or disagree with its cart.
    return cancelled == 0 && other == 0 && mismatched == 0 ? 0 : 3;
  }
  if (mode == "idle") {
    std::vector<double> exits, stopped_to_exit;
    for (int64_t i = 0; i < o.rounds; ++i) {
      double after_stopped = 0;
      absl::StatusOr<double> ms = RunIdleRound(o, &after_stopped);
      if (!ms.ok()) {
        std::fprintf(stderr, "round %lld: %s\n", static_cast<long long>(i), std::string(ms.status().message()).c_str());
        return 1;
      }
      std::fprintf(stderr, "round %lld: exit after %.0f ms (%.0f ms after 'stopped')\n", static_cast<long long>(i), *ms,
                   after_stopped);
      exits.push_back(*ms);
      stopped_to_exit.push_back(after_stopped);
    }
    const std::string name = absl::StrCat("shutdown.idle.", o.client, ".", o.clients);
    ecrm::bench::PrintResult(name + ".exit", "ms", exits);
    ecrm::bench::PrintResult(name + ".stopped_to_exit", "ms", stopped_to_exit);
    std::printf("{\"bench\":\"%s.exit_max\",\"unit\":\"ms\",\"max\":%lld}\n", name.c_str(),
                static_cast<long long>(*std::max_element(exits.begin(), exits.end())));
    return 0;
  }
  std::fprintf(stderr, "ecrm-shutdown-bench: --mode must be load or idle\n");
  return 2;
}
