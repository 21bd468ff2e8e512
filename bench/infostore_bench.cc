// ecrm-infostore-bench: streaming throughput of a running ecrm-infostore.
//   --mode=events  RecordEvents: `streams` client streams of `batch`-event batches for `duration`
//   --mode=watch   WatchChanges: one consumer reads the whole feed from sequence 0
//   --mode=seed    UpsertCustomer: `customers` customers with a 9-field profile; their ids to --ids-file
// With --ids-file, events name random customers of that file by id (not device ids). With
// --rate, events are sent open loop: `rate` events/s in calls of `batch` events, each call its
// own stream, and the report adds how late the acknowledgements came against the schedule.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_format.h"
#include "bench_util.h"
#include "customer_seed.h"
#include "ecrm/config/flags.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"

namespace v1 = ecrm::infostore::v1;
namespace cv1 = ecrm::common::v1;
using Clock = std::chrono::steady_clock;

namespace {

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

const char* const kEventTypes[] = {"page_view",  "page_view",  "page_view",   "product_view", "product_view",
                                   "email_open", "email_open", "add_to_cart", "add_to_cart",  "purchase"};

// One event of customer `id` (by id), of a type drawn by `r`.
void FillEvent(v1::Event& e, const std::string& id, std::string event_id, int64_t now_s, uint64_t r) {
  const char* type = kEventTypes[r % 10];
  e.set_event_id(std::move(event_id));
  e.mutable_customer()->set_customer_id(id);
  e.set_type(type);
  e.mutable_occurred_at()->set_seconds(now_s - static_cast<int64_t>((r >> 8) % 3600));
  if (r % 10 == 9) {
    e.mutable_amount()->set_amount_minor(static_cast<int64_t>(500 + (r >> 20) % 20000));
    e.mutable_amount()->set_currency("GBP");
  }
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "ecrm-infostore-bench: %s\n", what.c_str());
  std::exit(1);
}

std::vector<std::string> ReadIds(const std::string& file) {
  std::vector<std::string> ids;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) ids.push_back(line);
  if (ids.empty()) Die("no customer ids in " + file);
  return ids;
}

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// `customers` customers, each with an email, a 9-field profile from two touchpoints (so the
// record keeps provenance for each field) and ~60% an email marketing consent.
void Seed(v1::InformationStore::Stub& stub, int64_t customers, int threads, const std::string& ids_file) {
  const std::string nonce = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  const auto start = Clock::now();
  const std::vector<std::string> ids = ecrm::bench::SeedCustomers(
      stub, customers, threads,
      [&](int64_t i) {
        const uint64_t r = Mix(static_cast<uint64_t>(i));
        v1::UpsertCustomerRequest req;
        auto* ident = req.add_identifiers();
        ident->set_type(cv1::IDENTIFIER_TYPE_EMAIL);
        ident->set_value(absl::StrCat("isb-", nonce, "-", i, "@example.com"));
        req.set_source(cv1::TOUCHPOINT_WEB);
        auto* p = req.mutable_profile();
        p->set_first_name(absl::StrCat("First", r % 2000));
        p->set_last_name(absl::StrCat("Last", (r >> 11) % 20000));
        p->set_gender(static_cast<v1::Gender>(1 + (r >> 25) % 4));
        p->set_locale("en-GB");
        p->set_time_zone("Europe/London");
        p->set_birth_date(
            absl::StrFormat("%04d-%02d-%02d", 1940 + (r >> 35) % 66, 1 + (r >> 42) % 12, 1 + (r >> 46) % 28));
        p->mutable_address()->set_country("GB");
        p->mutable_address()->set_city(absl::StrCat("City", (r >> 13) % 5000));
        p->mutable_address()->set_postal_code(absl::StrFormat("P%05d", (r >> 7) % 200000));
        return req;
      },
      [](int64_t i) { return (Mix(static_cast<uint64_t>(i)) >> 50) % 10 < 6; }, cv1::TOUCHPOINT_CALL_CENTRE);
  std::ofstream out(ids_file);
  for (const std::string& id : ids) out << id << "\n";
  if (!out) Die("cannot write " + ids_file);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("{\"bench\":\"infostore_seed\",\"customers\":%lld,\"per_s\":%.0f}\n", static_cast<long long>(customers),
              static_cast<double>(customers) / secs);
}

// Open loop: `rate` events/s for `duration` in calls of `batch` events to random customers of
// `ids`, each call its own stream, sent by `workers` threads. Prints achieved events/s and the
// acknowledgements' lateness from their schedule.
int OpenLoop(v1::InformationStore::Stub& stub, const std::vector<std::string>& ids, double rate, int64_t batch,
             absl::Duration duration, int64_t workers) {
  const std::string nonce = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  const auto interval = std::chrono::duration<double>(static_cast<double>(batch) / rate);
  const auto start = Clock::now();
  const auto end = start + absl::ToChronoNanoseconds(duration);
  std::mutex mu;
  std::vector<double> late_ms;
  int64_t errors = 0, accepted = 0;
  const int64_t max_queue =
      ecrm::bench::OpenLoopPool(start, end, interval, workers, [&](int64_t n, Clock::time_point scheduled) {
        const int64_t now_s = absl::ToUnixSeconds(absl::Now());
        v1::RecordEventsRequest req;
        for (int64_t k = 0; k < batch; ++k) {
          const uint64_t r = Mix(static_cast<uint64_t>(n * batch + k));
          FillEvent(*req.add_events(), ids[(r >> 24) % ids.size()], absl::StrCat("ol-", nonce, "-", n, "-", k), now_s,
                    r);
        }
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        v1::RecordEventsResponse resp;
        auto writer = stub.RecordEvents(&ctx, &resp);
        writer->Write(req);
        writer->WritesDone();
        grpc::Status s = writer->Finish();
        const auto acked = Clock::now();
        std::lock_guard lock(mu);
        late_ms.push_back(std::chrono::duration<double, std::milli>(acked - scheduled).count());
        if (s.ok()) {
          accepted += resp.accepted();
        } else if (++errors <= 5) {
          std::fprintf(stderr, "RecordEvents: %s\n", s.error_message().c_str());
        }
      });
  // Achieved: the events acknowledged over the time until the last acknowledgement.
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double p50 = Percentile(late_ms, 0.5), p99 = Percentile(late_ms, 0.99);
  const double max = late_ms.empty() ? 0 : late_ms.back();
  std::printf(
      "{\"bench\":\"infostore_events_open_loop\",\"target_rate\":%.0f,\"achieved_rate\":%.0f,\"calls\":%zu,"
      "\"errors\":%lld,\"max_queue\":%lld,\"late_p50_ms\":%.1f,\"late_p99_ms\":%.1f,\"late_max_ms\":%.1f}\n",
      rate, static_cast<double>(accepted) / secs, late_ms.size(), static_cast<long long>(errors),
      static_cast<long long>(max_queue), p50, p99, max);
  return errors > 0 ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:50051", mode = "events";
  std::string ids_file;
  int64_t streams = 4, batch = 1000, customers = 1000, runs = 1, total_events = 0, threads = 8, workers = 64;
  double rate = 0;
  absl::Duration duration = absl::Seconds(60);
  ecrm::config::Flags flags("ecrm-infostore-bench",
                            "RecordEvents and WatchChanges throughput of a running ecrm-infostore");
  flags.AddString("target", &target, "host:port of ecrm-infostore");
  flags.AddString("mode", &mode, "events, watch or seed");
  flags.AddString("ids-file", &ids_file, "seed: where to write the ids; events: random customers of this file, by id");
  flags.AddDouble("rate", &rate, "events: events per second, open loop (0: as fast as the streams go)");
  flags.AddInt("threads", &threads, "seed: concurrent UpsertCustomer calls");
  flags.AddInt("workers", &workers, "events with --rate: threads sending calls");
  flags.AddInt("streams", &streams, "concurrent RecordEvents streams");
  flags.AddInt("batch", &batch, "events per batch");
  flags.AddInt("customers", &customers,
               "distinct customers the events belong to (device ids, created on first use); seed: customers to create");
  flags.AddInt("runs", &runs, "runs (the median is reported)");
  flags.AddInt("total-events", &total_events, "stop each events run after this many events (0: run for --duration)");
  flags.AddDuration("duration", &duration, "length of each events run");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = v1::InformationStore::NewStub(channel);
  if (mode == "seed") {
    if (ids_file.empty()) Die("--mode=seed needs --ids-file");
    Seed(*stub, customers, static_cast<int>(threads), ids_file);
    return 0;
  }
  std::vector<std::string> ids;
  if (!ids_file.empty()) ids = ReadIds(ids_file);
  if (mode == "events" && rate > 0) {
    if (ids.empty()) Die("--rate needs --ids-file");
    return OpenLoop(*stub, ids, rate, batch, duration, workers);
  }
  std::vector<double> results;
  // Event ids unique to this invocation: an earlier run's ids would only measure dedupe.
  const std::string nonce = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  for (int64_t r = 0; r < runs; ++r) {
    if (mode == "events") {
      std::atomic<int64_t> accepted{0}, sent{0};
      std::atomic<bool> failed{false};
      const auto start = std::chrono::steady_clock::now();
      const auto end = start + absl::ToChronoNanoseconds(duration);
      std::vector<std::thread> threads;
      for (int64_t s = 0; s < streams; ++s) {
        threads.emplace_back([&, s] {
          grpc::ClientContext ctx;
          v1::RecordEventsResponse resp;
          auto writer = stub->RecordEvents(&ctx, &resp);
          const int64_t now_s = absl::ToUnixSeconds(absl::Now());
          int64_t batches = 0;
          for (int64_t b = 0; std::chrono::steady_clock::now() < end; ++b) {
            // Batches walk the customers in turn, so every customer gets events.
            const int64_t offset = sent.fetch_add(batch);
            if (total_events > 0 && offset >= total_events) break;
            v1::RecordEventsRequest req;
            for (int64_t i = 0; i < batch; ++i) {
              v1::Event* e = req.add_events();
              if (!ids.empty()) {  // random customers, by id
                const uint64_t rk = Mix(static_cast<uint64_t>(offset + i) ^ (static_cast<uint64_t>(r) << 40));
                FillEvent(*e, ids[(rk >> 24) % ids.size()],
                          absl::StrCat("bench-", nonce, "-", r, "-", s, "-", b, "-", i), now_s, rk);
                continue;
              }
              e->set_event_id(absl::StrCat("bench-", nonce, "-", r, "-", s, "-", b, "-", i));
              e->set_type(i % 10 == 0 ? "purchase" : "page_view");
              auto* id = e->mutable_customer()->mutable_identifier();
              id->set_type(ecrm::common::v1::IDENTIFIER_TYPE_DEVICE_ID);
              id->set_value(absl::StrCat("device-", (offset + i) % customers));
              e->mutable_occurred_at()->set_seconds(now_s - 3600 + i % 3600);
            }
            if (!writer->Write(req)) break;
            ++batches;
          }
          if (batches == 0) {  // the total was reached by the other streams: nothing to send
            ctx.TryCancel();
            (void)writer->Finish();
            return;
          }
          writer->WritesDone();
          grpc::Status st = writer->Finish();
          if (!st.ok()) {
            std::fprintf(stderr, "stream %lld: %s\n", static_cast<long long>(s), st.error_message().c_str());
            failed = true;
          }
          accepted += resp.accepted();
        });
      }
      for (auto& t : threads) t.join();
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (failed) return 1;
      results.push_back(static_cast<double>(accepted.load()) / secs);
    } else {
      grpc::ClientContext ctx;
      v1::WatchChangesRequest req;
      req.set_heartbeat_seconds(1);
      auto reader = stub->WatchChanges(&ctx, req);
      v1::WatchChangesResponse message;
      int64_t n = 0;
      const auto start = std::chrono::steady_clock::now();
      while (reader->Read(&message) && message.changes_size() > 0)
        n += message.changes_size();  // a heartbeat: caught up
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() - 1.0;
      ctx.TryCancel();
      (void)reader->Finish();
      results.push_back(static_cast<double>(n) / std::max(secs, 1e-3));
      std::fprintf(stderr, "watch: %lld changes\n", static_cast<long long>(n));
    }
  }
  ecrm::bench::PrintResult(absl::StrCat("infostore_", mode), mode == "events" ? "events/s" : "changes/s", results);
  return 0;
}
